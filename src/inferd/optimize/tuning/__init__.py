"""`inferd tune`'s parts: the search space (`space`), the measuring and the adaptive search
(`search`), the bounds and the choice (`choice`), the temporary repository and server the
configurations are measured on (`staging`), the report (`report`) and `--apply` (`apply`).

The load generator is never imported here (the server never imports `inferd_bench`): the
CLI hands `inferd.optimize.tune.tune` a `Probe`, the function that measures one
configuration under load.
"""
