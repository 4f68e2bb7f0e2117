# ICPN — one-command setup. `sudo make run` / `sudo make test` install what is missing
# (idempotent: stamp files under .stamps/), build, and run. As root (CI), drop the `sudo`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

STAMPS  := .stamps
VENV    := .venv
PY      := $(VENV)/bin/python
ICPN    := $(VENV)/bin/icpn
# Debian's python3 (not a pyenv/conda one): the venv must see Debian's Mininet.
SYSPY   ?= /usr/bin/python3

APT_REQUIRED := clang llvm libbpf-dev libbpf1 libelf-dev linux-libc-dev iproute2 ethtool \
                tcpdump iperf3 iputils-ping mininet bridge-utils python3-venv \
                python3-dev make tshark prometheus chromium chromium-driver \
                openssh-server openssh-client sudo
APT_OPTIONAL := bpftool
PYTEST_ARGS  ?=
# BMv2 and p4c built from source go under a prefix of their own (docs/p4.md); when it holds them,
# every target finds them there (the BMv2 tests and vectors then run instead of skipping).
P4_PREFIX    ?= /opt/p4
ifneq ($(wildcard $(P4_PREFIX)/bin/simple_switch_grpc),)
export PATH := $(P4_PREFIX)/bin:$(PATH)
endif

.PHONY: help deps proto build test lint typecheck pytest run vectors clean distclean check-root

help:
	@echo "ICPN make targets:"
	@echo "  sudo make run     install what is missing, build, run the reference scenario"
	@echo "  sudo make test    install what is missing, build, run ruff, mypy and the whole suite"
	@echo "  sudo make deps    only install system packages and the Python venv ($(VENV))"
	@echo "  make build        build the eBPF objects (ebpf/build/) and check p4/build/ freshness"
	@echo "  make proto        (re)generate the P4Runtime bindings (pyctl/p4rt/pb/) from p4/proto/"
	@echo "  make clean        remove build outputs and run directories (keeps the venv)"
	@echo "  make distclean    clean, and remove the venv and stamps"

check-root:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "icpn: this step needs root (packages, namespaces, BPF): run 'sudo make $(MAKECMDGOALS)'" >&2; \
	  exit 1; fi

# --- dependencies -----------------------------------------------------------------------------

$(STAMPS):
	@mkdir -p $(STAMPS)

$(STAMPS)/apt: Makefile | $(STAMPS)
	@$(MAKE) --no-print-directory check-root MAKECMDGOALS="$(or $(MAKECMDGOALS),deps)"
	@missing=""; for p in $(APT_REQUIRED); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	for p in $(APT_OPTIONAL); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" && continue; \
	  apt-cache show $$p >/dev/null 2>&1 && missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing system packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq || { echo "icpn: apt-get update failed" >&2; exit 1; }; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "icpn: apt-get install failed for:$$missing" >&2; exit 1; }; \
	  case " $$missing " in *" prometheus "*) \
	    echo "==> disabling the prometheus service the package started (tests run their own)"; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1; \
	    elif [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1; \
	      update-rc.d prometheus disable >/dev/null 2>&1; fi; true;; esac; \
	  case " $$missing " in *" openssh-server "*) \
	    echo "==> disabling the ssh service the package started (the cluster test runs its own)"; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now ssh >/dev/null 2>&1; \
	    elif [ -x /etc/init.d/ssh ]; then /etc/init.d/ssh stop >/dev/null 2>&1; \
	      update-rc.d ssh disable >/dev/null 2>&1; fi; true;; esac; \
	else echo "==> system packages present"; fi
	@touch $@

$(STAMPS)/venv: pyproject.toml setup.py $(STAMPS)/apt
	@echo "==> Python venv $(VENV) (with system site packages, for Debian's Mininet)"
	@[ -x $(PY) ] || $(SYSPY) -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]' || { echo "icpn: pip install failed" >&2; exit 1; }
	@# The P4Runtime bindings are ICPN's own (pyctl/p4rt/pb, made by the install); the p4runtime
	@# wheel an older venv had is unused and does not import with this protobuf: remove it.
	@$(PY) -m pip uninstall -q -y p4runtime 2>/dev/null || true
	@$(PY) -c "import mininet.net, scapy, pyroute2, grpc, prometheus_client, selenium; \
	  from pyctl.p4rt.pb import p4runtime_pb2" \
	  || { echo "icpn: the venv cannot import its dependencies (see above)" >&2; exit 1; }
	@touch $@

deps: $(STAMPS)/venv

# --- build ------------------------------------------------------------------------------------

build: deps proto
	@$(MAKE) --no-print-directory -C ebpf PYTHON=$(abspath $(PY))
	@$(PY) -m pyctl.toolchain --report

# The P4Runtime bindings from p4/proto/ (an install makes them too; this refreshes a checkout).
proto: deps
	@$(PY) p4/proto/generate.py

# --- test -------------------------------------------------------------------------------------

lint: deps
	@echo "==> ruff"
	@$(VENV)/bin/ruff check pyctl tests bench
	@$(VENV)/bin/ruff format --check pyctl tests bench
	@echo "==> import-linter (the layers of docs/architecture.md)"
	@$(VENV)/bin/lint-imports --no-cache

typecheck: deps
	@echo "==> mypy"
	@$(VENV)/bin/mypy

pytest: build
	@echo "==> pytest"
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

test: check-root lint typecheck pytest

# --- run --------------------------------------------------------------------------------------

run: check-root build
	@$(ICPN) demo
	@$(ICPN) run topologies/ingest.yaml
	@if command -v simple_switch_grpc >/dev/null; then $(ICPN) run topologies/mixed.yaml; \
	 else echo "icpn: BMv2 not installed: the mixed BMv2/eBPF network is skipped"; fi

vectors: build
	@$(ICPN) vectors

# --- clean ------------------------------------------------------------------------------------

clean:
	@[ ! -d ebpf ] || $(MAKE) --no-print-directory -C ebpf clean
	@rm -rf runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
	@find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean
	@rm -rf $(VENV) $(STAMPS) *.egg-info
