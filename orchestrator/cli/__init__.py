"""The `prismrl` command: the command table and dispatch (`main.py`), the laptop job
`prismrl demo` (`demo.py`) and `prismrl bench NAME` (`bench.py`), the only module that imports
`benchmarks`, lazily, inside its dispatch.

May import every other orchestrator subpackage.
"""
