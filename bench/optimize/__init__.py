"""The speed-against-accuracy targets of `inferd optimize` and `inferd tune`, measured side by
side in one run on this machine (`python -m bench.optimize`; see its __main__)."""
