#!/usr/bin/python3
# Runs commands as xapi would (posix_spawn, bare PATH, stdout to /dev/null) and
# reports each run's wall time, CPU time and peak RSS from wait4's rusage, which Node
# cannot read for a child. Input: JSON {"runs": N, "commands": {name: argv}, "env": {...}}
# on stdin. Output: JSON {name: {"wall_ms": [...], "cpu_ms": [...], "maxrss_mb": [...]}}.
# Commands are interleaved run by run, so background load hits them alike.
import json, os, sys, time

spec = json.load(sys.stdin)
env = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "ORIGINATOR": "SM", **spec.get("env", {})}
out = {name: {"wall_ms": [], "cpu_ms": [], "maxrss_mb": []} for name in spec["commands"]}
for _ in range(spec["runs"]):
    for name, argv in spec["commands"].items():
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
        _, status, ru = os.wait4(pid, 0)
        if status != 0:
            sys.exit(f"{name} exited with status {status}")
        out[name]["wall_ms"].append((time.perf_counter() - t) * 1000)
        out[name]["cpu_ms"].append((ru.ru_utime + ru.ru_stime) * 1000)
        out[name]["maxrss_mb"].append(ru.ru_maxrss / 1024)
json.dump(out, sys.stdout)
