#!/usr/bin/env python3
"""Writes samples.tsv (the lines `serve --demo` appends) from a Loghub checkout.

Usage: src/demo/make_samples.py CORPUS > src/demo/samples.tsv, where CORPUS holds
loghub/<Dataset>_2k.log and loghub-truth/<Dataset>_2k.log_structured.csv.

Per dataset it keeps up to 15 lines with ERROR, FATAL, an Exception or a failed
password, then lines with WARN or a failure (up to 30 in all), then the first line of
each event of the ground truth, up to 70 lines, in their order in the file with the
severe ones spread among them: the demo shows many kinds of line, and the README's
examples (`-e ERROR`, `-e 'Failed password'`, `-e Exception`) find something within
seconds.
"""
import csv
import re
import sys
from pathlib import Path

# dataset -> the demo file its lines go to (named for what they are)
FILES = {
    "HDFS": "hdfs.log",
    "Spark": "spark.log",
    "Zookeeper": "zookeeper.log",
    "OpenStack": "openstack.log",
    "OpenSSH": "auth.log",
    "Linux": "messages.log",
    "Apache": "apache-error.log",
    "Android": "android.log",
}
SEVERE = re.compile(r"ERROR|FATAL|Exception|\[error\]|Failed password")
TROUBLE = re.compile(r"WARN|fail|error", re.I)
PER_FILE = 70
TROUBLE_MAX = 30
SEVERE_MAX = 15


def main(corpus: Path) -> None:
    for dataset, name in FILES.items():
        raw = (corpus / "loghub" / f"{dataset}_2k.log").read_bytes().decode()
        lines = [l.rstrip("\r") for l in raw.split("\n") if l.strip()]
        with open(corpus / "loghub-truth" / f"{dataset}_2k.log_structured.csv") as f:
            events = [row["EventId"] for row in csv.DictReader(f)]
        severe = [i for i, l in enumerate(lines) if SEVERE.search(l)][:SEVERE_MAX]
        trouble = [i for i, l in enumerate(lines) if TROUBLE.search(l) and i not in severe]
        keep = severe + trouble[: TROUBLE_MAX - len(severe)]
        seen = set()
        for i, event in enumerate(events):
            if len(keep) >= PER_FILE:
                break
            if event not in seen and i not in keep:
                keep.append(i)
            seen.add(event)
        rest = sorted(set(keep) - set(severe))
        for i in spread(sorted(severe), rest):
            print(f"{name}\t{lines[i][:400]}")


def spread(severe, rest):
    """The severe lines spread evenly among the rest: the demo writes each file's
    lines in this order, so an `ERROR` comes every few seconds, not after a minute."""
    out = list(rest)
    step = (len(rest) + len(severe)) / max(len(severe), 1)
    for k, i in enumerate(severe):
        out.insert(int(k * step), i)
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]))
