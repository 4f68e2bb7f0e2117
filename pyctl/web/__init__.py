"""The live view of a run (`icpn run --web`): a local page drawing the network as it runs, and
the same view frozen into the run directory's report.html."""
