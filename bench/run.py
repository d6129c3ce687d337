#!/usr/bin/env python3
"""`make bench`: the benchmarks in bench/ (for now the read path); exits with
its status. Arguments are passed on (see bench/read_path.py --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from read_path import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
