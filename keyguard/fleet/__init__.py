"""Fleet scans: the whole history of every repository of an organization, sharded, incremental.

sources (which repositories) -> worker (mirror + the scanner's history engine, per repository)
-> executor (inline, process pool, Dask) -> run (shard, --since, verify) -> model (the JSON
report that is also the state) -> report (text, JSON, SARIF, HTML).
"""
