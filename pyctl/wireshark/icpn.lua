-- ICPN dissector for Wireshark >= 4.0 (Lua 5.2): the wire formats of ICPN's SPEC.md that
-- Wireshark does not dissect itself.
--
--   * APN ID (SPEC 2) as an IPv6 Hop-by-Hop option, Destination option or SRH TLV;
--   * Alternate Marking option (SPEC 3, RFC 9343);
--   * NEXT-CSID (uSID) structure of IPv6 destination addresses inside a configured locator block;
--   * IFIT report (SPEC 3 "Export"), UDP to the collector port.
--
-- Wireshark 4.0 has no dissector table for IPv6 options, so the "icpn" protocol is a
-- post-dissector: it walks every IPv6 header Wireshark found (and its extension headers) and adds
-- an "ICPN" subtree. The IFIT report ("icpn.ifit") is an ordinary UDP-port dissector.
--
-- Load:    tshark -X lua_script:icpn.lua ...   or copy it into the personal Lua plugin folder
--          (`icpn wireshark --install` does that; `icpn wireshark --path` prints this file).
-- Filters: icpn.apn.id, icpn.apn.app_group, icpn.altmark.flowmon_id, icpn.csid.active,
--          icpn.ifit.flowmon_id, icpn.ifit.node.id, ...  Preferences: Protocols > ICPN.

-- BEGIN constants: rendered from pyctl/constants.py (`python -m pyctl.wireshark`), do not edit.
local C = {
    ALTMARK_OPT_TYPE = 0x12,
    APN_ID_TYPE_128 = 0x3,
    APN_ID_TYPE_32 = 0x1,
    APN_ID_TYPE_64 = 0x2,
    APN_OPT_TYPE_DEFAULT = 0x1e,
    APN_SRH_TLV_TYPE_DEFAULT = 0x7c,
    CSID_BITS = 16,
    IFIT_REPORT_PORT = 5391,
    IFIT_REPORT_VERSION = 1,
    IOAM_TRACE_TYPE_DEFAULT = 0xf20000,
    IPPROTO_DSTOPTS = 0x3c,
    IPPROTO_FRAGMENT = 0x2c,
    IPPROTO_HOPOPTS = 0x0,
    IPPROTO_ROUTING = 0x2b,
    IPV6_OPT_PAD1 = 0x0,
    SRH_ROUTING_TYPE = 0x4,
    SRH_TLV_PAD1 = 0x0,
}
-- END constants

local band, rshift, lshift = bit32.band, bit32.rshift, bit32.lshift

-- Project choices documented in pyctl/packets (SPEC fixes only part of them).
local APN_ID_WIDTH = { [C.APN_ID_TYPE_32] = 4, [C.APN_ID_TYPE_64] = 8, [C.APN_ID_TYPE_128] = 16 }
-- APN-ID-Type -> APP-Group-ID, USER-Group-ID, Reserved widths in bytes (pyctl/packets/apn.py).
local APN_SPLIT = {
    [C.APN_ID_TYPE_32] = { 2, 2, 0 },
    [C.APN_ID_TYPE_64] = { 4, 2, 2 },
    [C.APN_ID_TYPE_128] = { 8, 4, 4 },
}
local IFIT_FLAG_COUNTERS = 0x8000 -- Flags bit 0 (pyctl/packets/ifit_report.py)
local IFIT_HEADER_LEN = 60
local MAX_EXT_HEADERS = 16 -- a bound on the walk, not a protocol limit

----------------------------------------------------------------------------------------------
-- Protocols and fields

local icpn = Proto("icpn", "ICPN (APN, Alternate Marking, NEXT-CSID)")
local ifit = Proto("icpn.ifit", "ICPN IFIT Report")

local carrier_names = {
    [C.IPPROTO_HOPOPTS] = "Hop-by-Hop option",
    [C.IPPROTO_DSTOPTS] = "Destination option",
    [C.IPPROTO_ROUTING] = "SRH TLV",
}
local id_type_names = {
    [C.APN_ID_TYPE_32] = "32-bit",
    [C.APN_ID_TYPE_64] = "64-bit",
    [C.APN_ID_TYPE_128] = "128-bit",
}

local F = {
    apn = ProtoField.none("icpn.apn", "APN ID"),
    apn_carrier = ProtoField.uint8("icpn.apn.carrier", "Carrier", base.DEC, carrier_names),
    apn_type = ProtoField.uint8("icpn.apn.type", "Option/TLV type", base.HEX),
    apn_len = ProtoField.uint8("icpn.apn.length", "Length", base.DEC),
    apn_id_type = ProtoField.uint8("icpn.apn.id_type", "APN-ID-Type", base.DEC, id_type_names),
    apn_flags = ProtoField.uint8("icpn.apn.flags", "Flags", base.HEX),
    apn_para_type = ProtoField.uint16("icpn.apn.para_type", "APN-Para-Type", base.HEX),
    apn_pt_bw = ProtoField.bool("icpn.apn.para_type.bandwidth", "Bandwidth (bit 0)", 16, nil,
        0x8000),
    apn_pt_lat = ProtoField.bool("icpn.apn.para_type.latency", "Latency bound (bit 1)", 16, nil,
        0x4000),
    apn_pt_jit = ProtoField.bool("icpn.apn.para_type.jitter", "Jitter bound (bit 2)", 16, nil,
        0x2000),
    apn_pt_loss = ProtoField.bool("icpn.apn.para_type.loss", "Loss bound (bit 3)", 16, nil,
        0x1000),
    apn_pt_unknown = ProtoField.uint16("icpn.apn.para_type.unknown", "Unknown bits (4-15)",
        base.HEX, nil, 0x0FFF),
    apn_id = ProtoField.bytes("icpn.apn.id", "APN-ID"),
    apn_app = ProtoField.uint64("icpn.apn.app_group", "APP-Group-ID", base.DEC_HEX),
    apn_user = ProtoField.uint32("icpn.apn.user_group", "USER-Group-ID", base.DEC_HEX),
    apn_reserved = ProtoField.uint32("icpn.apn.reserved", "Reserved", base.HEX),
    apn_bw = ProtoField.uint32("icpn.apn.param.bandwidth", "Bandwidth", base.UNIT_STRING,
        { " kbit/s" }),
    apn_lat = ProtoField.uint32("icpn.apn.param.latency", "Latency bound", base.UNIT_STRING,
        { " µs" }),
    apn_jit = ProtoField.uint32("icpn.apn.param.jitter", "Jitter bound", base.UNIT_STRING,
        { " µs" }),
    apn_loss = ProtoField.uint32("icpn.apn.param.loss", "Loss bound", base.UNIT_STRING,
        { " ppm" }),
    apn_unknown = ProtoField.uint32("icpn.apn.param.unknown", "Unknown parameter", base.HEX),
    apn_unknown_bit = ProtoField.uint8("icpn.apn.param.unknown_bit", "APN-Para-Type bit"),
    apn_extra = ProtoField.uint32("icpn.apn.param.extra", "Parameter with no APN-Para-Type bit",
        base.HEX),
    apn_trailing = ProtoField.bytes("icpn.apn.trailing", "Trailing bytes"),

    am = ProtoField.none("icpn.altmark", "Alternate Marking"),
    am_len = ProtoField.uint8("icpn.altmark.length", "Length", base.DEC),
    am_flowmon = ProtoField.uint32("icpn.altmark.flowmon_id", "FlowMonID", base.DEC, nil,
        0xFFFFF000),
    am_l = ProtoField.uint32("icpn.altmark.l", "L (colour)", base.DEC, nil, 0x00000800),
    am_d = ProtoField.uint32("icpn.altmark.d", "D (double marking)", base.DEC, nil, 0x00000400),
    am_reserved = ProtoField.uint32("icpn.altmark.reserved", "Reserved", base.HEX, nil,
        0x000003FF),
    am_trailing = ProtoField.bytes("icpn.altmark.trailing", "Trailing bytes"),

    csid = ProtoField.none("icpn.csid", "NEXT-CSID destination"),
    csid_block = ProtoField.string("icpn.csid.block", "Locator block"),
    csid_active = ProtoField.uint32("icpn.csid.active", "Active C-SID", base.HEX),
    csid_next = ProtoField.uint32("icpn.csid.remaining", "Remaining C-SID", base.HEX),
    csid_count = ProtoField.uint8("icpn.csid.remaining_count", "Remaining C-SIDs"),
}

local R = {
    version = ProtoField.uint8("icpn.ifit.version", "Version"),
    node_count = ProtoField.uint8("icpn.ifit.node_count", "Node count"),
    flags = ProtoField.uint16("icpn.ifit.flags", "Flags", base.HEX),
    flag_counters = ProtoField.bool("icpn.ifit.flags.counters", "Counter record (bit 0)", 16,
        nil, IFIT_FLAG_COUNTERS),
    flag_rest = ProtoField.uint16("icpn.ifit.flags.reserved", "Other flags", base.HEX, nil,
        0x7FFF),
    flowmon = ProtoField.uint32("icpn.ifit.flowmon_id", "FlowMonID", base.DEC, nil, 0xFFFFF000),
    l = ProtoField.uint32("icpn.ifit.l", "L (colour)", base.DEC, nil, 0x00000800),
    d = ProtoField.uint32("icpn.ifit.d", "D (double marking)", base.DEC, nil, 0x00000400),
    reserved = ProtoField.uint32("icpn.ifit.reserved", "Reserved", base.HEX, nil, 0x000003FF),
    tail = ProtoField.uint32("icpn.ifit.tail_node_id", "Tail node id", base.DEC_HEX),
    ts_sec = ProtoField.uint32("icpn.ifit.ts_sec", "Tail timestamp seconds"),
    ts_subsec = ProtoField.uint32("icpn.ifit.ts_subsec", "Tail timestamp sub-seconds",
        base.UNIT_STRING, { " µs" }),
    family = ProtoField.uint8("icpn.ifit.family", "Family", base.DEC, { [4] = "IPv4", [6] = "IPv6" }),
    proto = ProtoField.uint8("icpn.ifit.proto", "Protocol", base.DEC,
        { [1] = "ICMP", [6] = "TCP", [17] = "UDP", [58] = "ICMPv6" }),
    sport = ProtoField.uint16("icpn.ifit.sport", "Source port"),
    dport = ProtoField.uint16("icpn.ifit.dport", "Destination port"),
    tuple_reserved = ProtoField.uint16("icpn.ifit.tuple_reserved", "Reserved", base.HEX),
    src6 = ProtoField.ipv6("icpn.ifit.src", "Source"),
    dst6 = ProtoField.ipv6("icpn.ifit.dst", "Destination"),
    src4 = ProtoField.ipv4("icpn.ifit.src_ipv4", "Source (IPv4-mapped)"),
    dst4 = ProtoField.ipv4("icpn.ifit.dst_ipv4", "Destination (IPv4-mapped)"),
    packets = ProtoField.uint64("icpn.ifit.packets", "Packets"),
    bytes = ProtoField.uint64("icpn.ifit.bytes", "Bytes"),
    trace_type = ProtoField.uint32("icpn.ifit.trace_type", "IOAM trace type (preference)",
        base.HEX),
    free = ProtoField.bytes("icpn.ifit.free_space", "Free space"),
    node = ProtoField.none("icpn.ifit.node", "Node"),
    trailing = ProtoField.bytes("icpn.ifit.trailing", "Trailing bytes"),
    -- Node data, named as Wireshark's IOAM dissector names them (ipv6.opt.ioam.trace.node.*).
    hlim = ProtoField.uint8("icpn.ifit.node.hlim", "Hop Limit"),
    id = ProtoField.uint32("icpn.ifit.node.id", "ID"),
    iif = ProtoField.uint16("icpn.ifit.node.iif", "Ingress ID"),
    eif = ProtoField.uint16("icpn.ifit.node.eif", "Egress ID"),
    tss = ProtoField.uint32("icpn.ifit.node.tss", "Timestamp Seconds"),
    tsf = ProtoField.uint32("icpn.ifit.node.tsf", "Timestamp Fraction", base.UNIT_STRING,
        { " µs" }),
    trdelay = ProtoField.uint32("icpn.ifit.node.trdelay", "Transit Delay"),
    nsdata = ProtoField.uint32("icpn.ifit.node.nsdata", "Namespace Data (short)", base.HEX),
    qdepth = ProtoField.uint32("icpn.ifit.node.qdepth", "Queue Depth"),
    csum = ProtoField.uint32("icpn.ifit.node.csum", "Checksum Complement", base.HEX),
    hlim_wide = ProtoField.uint8("icpn.ifit.node.hlim_wide", "Hop Limit (wide)"),
    id_wide = ProtoField.uint64("icpn.ifit.node.id_wide", "ID (wide)"),
    iif_wide = ProtoField.uint32("icpn.ifit.node.iif_wide", "Ingress ID (wide)"),
    eif_wide = ProtoField.uint32("icpn.ifit.node.eif_wide", "Egress ID (wide)"),
    nsdata_wide = ProtoField.uint64("icpn.ifit.node.nsdata_wide", "Namespace Data (wide)",
        base.HEX),
    bufoccup = ProtoField.uint32("icpn.ifit.node.bufoccup", "Buffer Occupancy"),
    undefined = ProtoField.uint32("icpn.ifit.node.undefined", "Undefined bit", base.HEX),
}

local function values(t)
    local out = {}
    for _, v in pairs(t) do out[#out + 1] = v end
    return out
end
icpn.fields = values(F)
ifit.fields = values(R)

local E = {
    apn_bad = ProtoExpert.new("icpn.apn.malformed", "APN value disagrees with its length",
        expert.group.MALFORMED, expert.severity.WARN),
    apn_params = ProtoExpert.new("icpn.apn.param_mismatch",
        "APN-Para-Type and the parameters present disagree",
        expert.group.PROTOCOL, expert.severity.WARN),
    am_bad = ProtoExpert.new("icpn.altmark.malformed", "Alternate Marking length is not 4",
        expert.group.MALFORMED, expert.severity.WARN),
    opt_overrun = ProtoExpert.new("icpn.overrun", "Option/TLV length overruns its header",
        expert.group.MALFORMED, expert.severity.WARN),
}
icpn.experts = values(E)
local RE = {
    short = ProtoExpert.new("icpn.ifit.short", "IFIT report shorter than its fixed part",
        expert.group.MALFORMED, expert.severity.ERROR),
    version = ProtoExpert.new("icpn.ifit.bad_version", "IFIT report version is not 1",
        expert.group.PROTOCOL, expert.severity.WARN),
    nodes = ProtoExpert.new("icpn.ifit.bad_node_data",
        "Node data does not hold NodeCount records of the trace type",
        expert.group.MALFORMED, expert.severity.WARN),
    trailing = ProtoExpert.new("icpn.ifit.trailing_bytes", "Bytes after the counter record",
        expert.group.MALFORMED, expert.severity.WARN),
}
ifit.experts = values(RE)

----------------------------------------------------------------------------------------------
-- Preferences (Edit > Preferences > Protocols > ICPN, or tshark -o icpn.<name>:<value>)

icpn.prefs.apn_opt_type = Pref.uint("APN option type (decimal)", C.APN_OPT_TYPE_DEFAULT,
    "IPv6 Hop-by-Hop / Destination option type of the APN option (default 30 = 0x1E)")
icpn.prefs.apn_tlv_type = Pref.uint("APN SRH TLV type (decimal)", C.APN_SRH_TLV_TYPE_DEFAULT,
    "SRH TLV type of the APN TLV (default 124)")
icpn.prefs.ifit_port = Pref.uint("IFIT report UDP port", C.IFIT_REPORT_PORT,
    "UDP destination port of IFIT reports (default 5391)")
icpn.prefs.trace_type = Pref.string("IOAM trace type of IFIT reports",
    string.format("0x%06X", C.IOAM_TRACE_TYPE_DEFAULT),
    "The report does not carry the trace type: the node data is decoded with this one")
icpn.prefs.csid_block = Pref.string("uSID locator block", "",
    "IPv6 prefix of the NEXT-CSID locator block, e.g. fcbb:bb00::/32 (empty: off); "
    .. "destination addresses inside it are shown as block, active C-SID, remaining C-SIDs")
icpn.prefs.csid_bits = Pref.uint("C-SID length (bits)", C.CSID_BITS,
    "Length of one compressed SID: 16 (F3216, default) or 32")

-- Parse an IPv6 prefix "a:b::/n" into 16 bytes and a length; nil, reason when it is not one.
local function parse_prefix(text)
    local addr, len = text:match("^%s*([%x:]+)/(%d+)%s*$")
    if not addr then return nil, "not of the form address/length" end
    len = tonumber(len)
    if len > 128 or len % 8 ~= 0 then return nil, "length must be a multiple of 8 up to 128" end
    local head, tail = addr:match("^(.-)::(.*)$")
    local function groups(s)
        local g = {}
        if s == "" then return g end
        for part in (s .. ":"):gmatch("([^:]*):") do
            if not part:match("^%x%x?%x?%x?$") then return nil end
            g[#g + 1] = tonumber(part, 16)
        end
        return g
    end
    local gs
    if head then
        local h, t = groups(head), groups(tail)
        if not h or not t or #h + #t > 7 then return nil, "bad address" end
        gs = h
        for _ = 1, 8 - #h - #t do gs[#gs + 1] = 0 end
        for _, v in ipairs(t) do gs[#gs + 1] = v end
    else
        gs = groups(addr)
        if not gs or #gs ~= 8 then return nil, "bad address" end
    end
    local bytes = {}
    for _, v in ipairs(gs) do
        bytes[#bytes + 1] = rshift(v, 8)
        bytes[#bytes + 1] = band(v, 0xFF)
    end
    return { bytes = bytes, len = len, text = text:gsub("%s", "") }
end

local state = { port = nil, block = nil, trace_type = C.IOAM_TRACE_TYPE_DEFAULT }

local function apply_prefs()
    local udp = DissectorTable.get("udp.port")
    if state.port ~= icpn.prefs.ifit_port then
        if state.port then udp:remove(state.port, ifit) end
        state.port = icpn.prefs.ifit_port
        udp:add(state.port, ifit)
    end
    state.block = nil
    local b = icpn.prefs.csid_block
    if b ~= nil and b:match("%S") then
        local p, why = parse_prefix(b)
        if p then state.block = p
        else report_failure("ICPN: uSID locator block '" .. b .. "': " .. why) end
    end
    local tt = tonumber(icpn.prefs.trace_type)
    if tt and tt >= 0 and tt < 0x1000000 then
        state.trace_type = tt
    else
        state.trace_type = C.IOAM_TRACE_TYPE_DEFAULT
        report_failure("ICPN: IOAM trace type '" .. icpn.prefs.trace_type
            .. "' is not a 24-bit number; using the default")
    end
end
icpn.prefs_changed = apply_prefs

----------------------------------------------------------------------------------------------
-- APN value (option or SRH TLV): APN-ID-Type | Flags | APN-Para-Type | APN-ID | parameters

local PARAM_FIELD = { [0] = F.apn_bw, [1] = F.apn_lat, [2] = F.apn_jit, [3] = F.apn_loss }

-- `tlv` is the range of Type | Length | Value; `carrier` the next-header value of its header.
local function dissect_apn(parent, tlv, carrier)
    local vlen = tlv:len() - 2
    local t = parent:add(F.apn, tlv)
    t:add(F.apn_carrier, carrier):set_generated()
    t:add(F.apn_type, tlv(0, 1))
    t:add(F.apn_len, tlv(1, 1))
    t:append_text(" (" .. carrier_names[carrier] .. ")")
    if vlen < 4 then
        t:add_proto_expert_info(E.apn_bad, "APN value of " .. vlen .. " bytes: 4 needed before "
            .. "the APN-ID")
        return
    end
    local v = tlv(2, vlen)
    local id_type = v(0, 1):uint()
    local para = v(2, 2):uint()
    t:add(F.apn_id_type, v(0, 1))
    t:add(F.apn_flags, v(1, 1))
    local pt = t:add(F.apn_para_type, v(2, 2))
    pt:add(F.apn_pt_bw, v(2, 2))
    pt:add(F.apn_pt_lat, v(2, 2))
    pt:add(F.apn_pt_jit, v(2, 2))
    pt:add(F.apn_pt_loss, v(2, 2))
    pt:add(F.apn_pt_unknown, v(2, 2))
    local width = APN_ID_WIDTH[id_type]
    if not width then
        t:add_proto_expert_info(E.apn_bad, "APN-ID-Type " .. id_type
            .. " is not 1 (32-bit), 2 (64-bit) or 3 (128-bit)")
        if vlen > 4 then t:add(F.apn_trailing, v(4, vlen - 4)) end
        return
    end
    if vlen < 4 + width then
        t:add_proto_expert_info(E.apn_bad, "APN-ID-Type " .. id_type .. " needs a " .. width
            .. "-byte APN-ID, " .. (vlen - 4) .. " byte(s) follow")
        if vlen > 4 then t:add(F.apn_trailing, v(4, vlen - 4)) end
        return
    end
    local idr = v(4, width)
    local idt = t:add(F.apn_id, idr)
    local split = APN_SPLIT[id_type]
    local app = idr(0, split[1]):uint64()
    local user = idr(split[1], split[2]):uint()
    idt:add(F.apn_app, idr(0, split[1]))
    idt:add(F.apn_user, idr(split[1], split[2]))
    if split[3] > 0 then idt:add(F.apn_reserved, idr(split[1] + split[2], split[3])) end
    t:append_text(", APN-ID 0x" .. idr:bytes():tohex() .. " (APP " .. tostring(app)
        .. ", USER " .. user .. ")")

    -- Parameters: as many 32-bit words as the length leaves room for (what ICPN's scapy layer
    -- and validator read), named by the set bits of the bitmap in bit order.
    local bits = {}
    for b = 0, 15 do
        if band(para, lshift(1, 15 - b)) ~= 0 then bits[#bits + 1] = b end
    end
    local pos = 4 + width
    local room = math.floor((vlen - pos) / 4)
    for i = 1, room do
        local r = v(pos, 4)
        local b = bits[i]
        if b == nil then
            t:add(F.apn_extra, r)
        elseif PARAM_FIELD[b] then
            t:add(PARAM_FIELD[b], r)
        else
            local u = t:add(F.apn_unknown, r)
            u:append_text(" (bit " .. b .. ", ignored)")
            u:add(F.apn_unknown_bit, b):set_generated()
        end
        pos = pos + 4
    end
    if room ~= #bits then
        t:add_proto_expert_info(E.apn_params, "APN-Para-Type has " .. #bits .. " bit(s) set, "
            .. "the length leaves room for " .. room .. " parameter(s)")
    end
    if pos < vlen then
        t:add(F.apn_trailing, v(pos, vlen - pos))
        t:add_proto_expert_info(E.apn_bad, (vlen - pos) .. " byte(s) after the parameters")
    end
end

local function dissect_altmark(parent, tlv)
    local vlen = tlv:len() - 2
    local t = parent:add(F.am, tlv)
    t:add(F.am_len, tlv(1, 1))
    if vlen < 4 then
        t:add_proto_expert_info(E.am_bad, "Alternate Marking data of " .. vlen .. " bytes")
        return
    end
    local v = tlv(2, 4)
    t:add(F.am_flowmon, v)
    t:add(F.am_l, v)
    t:add(F.am_d, v)
    t:add(F.am_reserved, v)
    local w = v:uint()
    t:append_text(string.format(", FlowMonID %d, L %d, D %d", rshift(w, 12),
        band(rshift(w, 11), 1), band(rshift(w, 10), 1)))
    if vlen > 4 then
        t:add(F.am_trailing, tlv(6, vlen - 4))
        t:add_proto_expert_info(E.am_bad, "Alternate Marking data of " .. vlen .. " bytes")
    end
end

-- Type-length items (IPv6 options, SRH TLVs: same layout, Pad1 a lone type byte) of [s, e) of
-- `src`: `visit(type, item)` for each, an expert item and a stop where one overruns.
local function walk_tlvs(root, src, s, e, pad1, what, visit)
    while s < e do
        local t = src(s, 1):uint()
        if t == pad1 then
            s = s + 1
        else
            if s + 2 > e then return end
            local len = src(s + 1, 1):uint()
            if s + 2 + len > e then
                root():add_proto_expert_info(E.opt_overrun, string.format(what, t, len))
                return
            end
            visit(t, src(s, 2 + len))
            s = s + 2 + len
        end
    end
end

-- Options of a Hop-by-Hop / Destination Options header body [s, e) of `src`.
local function walk_options(root, src, s, e, carrier)
    walk_tlvs(root, src, s, e, C.IPV6_OPT_PAD1,
        "option type 0x%02x length %d overruns its header", function(otype, item)
            if otype == icpn.prefs.apn_opt_type then
                dissect_apn(root(), item, carrier)
            elseif otype == C.ALTMARK_OPT_TYPE then
                dissect_altmark(root(), item)
            end
        end)
end

-- TLVs of an SRH at [p, p + hlen) of `src`.
local function walk_srh_tlvs(root, src, p, hlen)
    local s = p + 8 + (src(p + 4, 1):uint() + 1) * 16 -- after Segment List[0..Last Entry]
    walk_tlvs(root, src, s, p + hlen, C.SRH_TLV_PAD1,
        "SRH TLV type %d length %d overruns the SRH", function(ttype, item)
            if ttype == icpn.prefs.apn_tlv_type then
                dissect_apn(root(), item, C.IPPROTO_ROUTING)
            end
        end)
end

-- NEXT-CSID view of a destination address inside the configured locator block.
local function dissect_csid(root, da)
    local blk = state.block
    if not blk then return end
    local nb = blk.len / 8
    for i = 1, nb do
        if da(i - 1, 1):uint() ~= blk.bytes[i] then return end
    end
    local cb = icpn.prefs.csid_bits / 8
    if (cb ~= 2 and cb ~= 4) or nb + cb > 16 then return end
    local t = root():add(F.csid, da)
    if nb > 0 then t:add(F.csid_block, da(0, nb), blk.text) end
    local hex = "%0" .. (2 * cb) .. "x"
    local active = da(nb, cb)
    t:add(F.csid_active, active):set_text(string.format("Active C-SID: " .. hex, active:uint()))
    t:append_text(string.format(", block %s, active C-SID " .. hex, blk.text, active:uint()))
    -- Remaining C-SIDs: up to the first all-zero one (End-of-Container, RFC 9800).
    local n = 0
    local p = nb + cb
    while p + cb <= 16 do
        local r = da(p, cb)
        if r:uint() == 0 then break end
        t:add(F.csid_next, r):set_text(string.format("Remaining C-SID: " .. hex, r:uint()))
        n = n + 1
        p = p + cb
    end
    t:add(F.csid_count, n):set_generated()
end

local f_ipv6 = Field.new("ipv6")

-- One IPv6 header (at `off` of `src`) and its extension headers.
local function walk_ipv6(root, src, off)
    local len = src:len()
    if off + 40 > len or rshift(src(off, 1):uint(), 4) ~= 6 then return end
    dissect_csid(root, src(off + 24, 16))
    local nh = src(off + 6, 1):uint()
    local p = off + 40
    for _ = 1, MAX_EXT_HEADERS do
        if p + 8 > len then return end
        if nh == C.IPPROTO_HOPOPTS or nh == C.IPPROTO_DSTOPTS or nh == C.IPPROTO_ROUTING then
            local hlen = (src(p + 1, 1):uint() + 1) * 8
            if p + hlen > len then return end
            if nh == C.IPPROTO_ROUTING then
                if src(p + 2, 1):uint() == C.SRH_ROUTING_TYPE then
                    walk_srh_tlvs(root, src, p, hlen)
                end
            else
                walk_options(root, src, p + 2, p + hlen, nh)
            end
            nh = src(p, 1):uint()
            p = p + hlen
        elseif nh == C.IPPROTO_FRAGMENT then
            -- What follows a non-first fragment is no header.
            if band(src(p + 2, 2):uint(), 0xFFF8) ~= 0 then return end
            nh = src(p, 1):uint()
            p = p + 8
        else
            return
        end
    end
end

function icpn.dissector(tvb, pinfo, tree)
    local headers = { f_ipv6() }
    if #headers == 0 then return end
    local top
    -- The ICPN subtree is made on first use so that frames without ICPN items stay unchanged.
    local function root()
        if not top then top = tree:add(icpn, tvb(0, 0)) end
        return top
    end
    for _, fi in ipairs(headers) do
        if fi.source then walk_ipv6(root, fi.source, fi.offset) end
    end
end
register_postdissector(icpn)

----------------------------------------------------------------------------------------------
-- IFIT report (UDP payload)

-- Trace-type bit -> fields of the node data in order ({field, bytes}); RFC 9197 4.4.
local TRACE_FIELDS = {
    [0] = { { R.hlim, 1 }, { R.id, 3 } },
    [1] = { { R.iif, 2 }, { R.eif, 2 } },
    [2] = { { R.tss, 4 } },
    [3] = { { R.tsf, 4 } },
    [4] = { { R.trdelay, 4 } },
    [5] = { { R.nsdata, 4 } },
    [6] = { { R.qdepth, 4 } },
    [7] = { { R.csum, 4 } },
    [8] = { { R.hlim_wide, 1 }, { R.id_wide, 7 } },
    [9] = { { R.iif_wide, 4 }, { R.eif_wide, 4 } },
    [10] = { { R.nsdata_wide, 8 } },
    [11] = { { R.bufoccup, 4 } },
}

local function node_len(trace_type)
    local words = 0
    for b = 0, 21 do
        if band(trace_type, lshift(1, 23 - b)) ~= 0 then
            words = words + ((b >= 8 and b <= 10) and 2 or 1)
        end
    end
    return words
end

local function dissect_node(parent, r, index, trace_type)
    local t = parent:add(R.node, r)
    t:set_text("Node " .. index .. (index == 1 and " (most recent hop)" or ""))
    local pos = 0
    for b = 0, 21 do
        if band(trace_type, lshift(1, 23 - b)) ~= 0 then
            local fields = TRACE_FIELDS[b] or { { R.undefined, 4 } }
            for _, fw in ipairs(fields) do
                local item = t:add(fw[1], r(pos, fw[2]))
                if fw[1] == R.id or fw[1] == R.id_wide then
                    t:append_text(", node id " .. tostring(r(pos, fw[2]):uint64()))
                end
                if fw[1] == R.undefined then item:append_text(" (trace-type bit " .. b .. ")") end
                pos = pos + fw[2]
            end
        end
    end
end

local function add_addr(t, r, f6, f4)
    local mapped = r(0, 10):bytes():tohex() == "00000000000000000000"
        and r(10, 2):uint() == 0xFFFF
    if mapped then
        t:add(f4, r(12, 4)):append_text(" (::ffff:" .. tostring(r(12, 4):ipv4()) .. ")")
        return tostring(r(12, 4):ipv4())
    end
    t:add(f6, r)
    return tostring(r:ipv6())
end

function ifit.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "IFIT"
    local t = tree:add(ifit, tvb())
    if len < 8 then
        t:add_proto_expert_info(RE.short, "IFIT report of " .. len .. " bytes")
        return len
    end
    t:add(R.version, tvb(0, 1))
    if tvb(0, 1):uint() ~= C.IFIT_REPORT_VERSION then
        t:add_proto_expert_info(RE.version)
    end
    t:add(R.node_count, tvb(1, 1))
    local ft = t:add(R.flags, tvb(2, 2))
    ft:add(R.flag_counters, tvb(2, 2))
    ft:add(R.flag_rest, tvb(2, 2))
    for _, f in ipairs({ R.flowmon, R.l, R.d, R.reserved }) do t:add(f, tvb(4, 4)) end
    if len < IFIT_HEADER_LEN then
        t:add_proto_expert_info(RE.short, "IFIT report of " .. len .. " bytes, the fixed part is "
            .. IFIT_HEADER_LEN)
        return len
    end
    t:add(R.tail, tvb(8, 4))
    t:add(R.ts_sec, tvb(12, 4))
    t:add(R.ts_subsec, tvb(16, 4))
    t:add(R.family, tvb(20, 1))
    t:add(R.proto, tvb(21, 1))
    t:add(R.sport, tvb(22, 2))
    t:add(R.dport, tvb(24, 2))
    t:add(R.tuple_reserved, tvb(26, 2))
    local src = add_addr(t, tvb(28, 16), R.src6, R.src4)
    local dst = add_addr(t, tvb(44, 16), R.dst6, R.dst4)
    local w = tvb(4, 4):uint()
    local fm, l = rshift(w, 12), band(rshift(w, 11), 1)
    local nodes = tvb(1, 1):uint()
    local rest = len - IFIT_HEADER_LEN
    if band(tvb(2, 2):uint(), IFIT_FLAG_COUNTERS) ~= 0 then
        t:append_text(string.format(": counters, FlowMonID %d, L %d", fm, l))
        pinfo.cols.info = string.format("IFIT counters FlowMonID %d L %d", fm, l)
        if rest < 16 then
            t:add_proto_expert_info(RE.short, "counter record needs 16 bytes, " .. rest .. " left")
            return len
        end
        t:add(R.packets, tvb(60, 8))
        t:add(R.bytes, tvb(68, 8))
        t:append_text(", " .. tostring(tvb(60, 8):uint64()) .. " packets, "
            .. tostring(tvb(68, 8):uint64()) .. " bytes")
        if rest > 16 then
            t:add(R.trailing, tvb(76, rest - 16))
            t:add_proto_expert_info(RE.trailing)
        end
        return len
    end
    t:append_text(string.format(": trace, FlowMonID %d, L %d, %d node(s), %s -> %s", fm, l,
        nodes, src, dst))
    pinfo.cols.info = string.format("IFIT trace FlowMonID %d L %d, %d node(s), %s -> %s", fm, l,
        nodes, src, dst)
    local tt = state.trace_type
    t:add(R.trace_type, tt):set_generated()
    local size = nodes * node_len(tt) * 4
    if band(tt, lshift(1, 23 - 22)) ~= 0 or size > rest or (nodes > 0 and size == 0) then
        t:add_proto_expert_info(RE.nodes, string.format(
            "NodeCount %d needs %d bytes of node data for trace type 0x%06x, the report has %d",
            nodes, size, tt, rest))
        if rest > 0 then t:add(R.free, tvb(IFIT_HEADER_LEN, rest)) end
        return len
    end
    -- The last NodeCount records (the tail may export the whole pre-allocated area, free
    -- space first, or only the filled part); most recent hop first.
    local start = IFIT_HEADER_LEN + rest - size
    if start > IFIT_HEADER_LEN then t:add(R.free, tvb(IFIT_HEADER_LEN, start - IFIT_HEADER_LEN)) end
    local nl = node_len(tt) * 4
    for i = 1, nodes do
        dissect_node(t, tvb(start + (i - 1) * nl, nl), i, tt)
    end
    return len
end

apply_prefs()
