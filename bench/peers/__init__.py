"""inferd and its peers serving the same models (`python -m bench.peers.run`). The servers in
servers/ are not part of this package: each runs in its peer's own virtual environment."""
