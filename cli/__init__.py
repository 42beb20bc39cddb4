"""vgw: the gateway's command line (`python -m cli`), built on requests and the standard library."""
