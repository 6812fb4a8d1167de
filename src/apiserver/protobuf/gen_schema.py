#!/usr/bin/env python3
"""Regenerate schema.txt (the wire schema of Kubernetes' protobuf encoding: message names,
field numbers, names and types; no comments) from the generated.proto files of
kubernetes/api and kubernetes/apimachinery.

usage: gen_schema.py <kubernetes/api checkout> <kubernetes/apimachinery checkout> > schema.txt
"""
import re, sys, os

API = ["core/v1", "apps/v1", "batch/v1", "rbac/v1", "coordination/v1", "discovery/v1",
       "events/v1", "networking/v1", "policy/v1", "scheduling/v1", "storage/v1",
       "autoscaling/v1", "autoscaling/v2", "authentication/v1", "authorization/v1"]
MACHINERY = ["pkg/apis/meta/v1", "pkg/runtime", "pkg/util/intstr", "pkg/api/resource"]

FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)")
MAP = re.compile(r"^\s*map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)")

def emit(path):
    pkg = None
    for line in open(path):
        line = line.split("//")[0]
        if m := re.match(r"^\s*package\s+([\w.]+);", line):
            pkg = m.group(1); print("P", pkg)
        elif m := re.match(r"^\s*message\s+(\w+)\s*\{", line):
            print("M", m.group(1))
        elif m := FIELD.match(line):
            print(m.group(4), m.group(3), "r" if m.group(1) == "repeated" else "o", m.group(2))
        elif m := MAP.match(line):
            print(m.group(4), m.group(3), "m", m.group(1), m.group(2))

for d in API:
    emit(os.path.join(sys.argv[1], d, "generated.proto"))
for d in MACHINERY:
    emit(os.path.join(sys.argv[2], d, "generated.proto"))
