"""The applications: ``calico demo`` (``demo``), ``calico study`` (``study``, its grids in ``grids``) and their
reports and figures (``report``). They sit above everything else: they run the other ``calico`` commands (in
this process through ``calico.cli`` or as subprocesses) and read their run folders. Nothing outside this package
and the CLI layer imports ``calico.apps`` (tests/test_architecture.py)."""
