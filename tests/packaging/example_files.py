#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads the examples in packaging/examples/ for examples_test.sh.

  example_files.py dockerfile PATH   the image's argv (ENTRYPOINT + CMD)
  example_files.py systemd PATH      the drop-in's ExecStart argv
  example_files.py kubernetes PATH   checks the pod; prints nothing

The first two print NUL-terminated fields: "copy", SRC, DEST for each COPY;
"env", KEY=VALUE for each variable set (ENV, Environment=); "success", N
for each SuccessExitStatus= value; then "argv" followed by the arguments.
Exit 1 with a message when the file is not what the README says it is;
exit 77 when PyYAML is missing (kubernetes)."""

import json
import shlex
import sys


def fail(message):
    print(f"example_files.py: {message}", file=sys.stderr)
    sys.exit(1)


def emit(*fields):
    for field in fields:
        sys.stdout.write(field + "\0")


def logical_lines(text):
    """Lines with backslash continuations joined and comments dropped."""
    joined = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not joined and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        yield (joined + line).strip()
        joined = ""
    if joined:
        yield joined.strip()


def dockerfile(path):
    entrypoint = cmd = None
    for line in logical_lines(open(path).read()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                fail(f"{instruction} must be the exec (JSON array) form: {rest}")
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                fail(f"{instruction} is not an array of strings: {rest}")
            if instruction == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                if "=" not in pair:
                    fail(f"ENV without '=': {pair}")
                emit("env", pair)
        elif instruction == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            if len(words) != 2:
                fail(f"COPY with other than one source: {rest}")
            emit("copy", words[0], words[1])
    if entrypoint is None:
        fail("no ENTRYPOINT")
    # docker run IMAGE: ENTRYPOINT followed by CMD.
    emit("argv", *(entrypoint + (cmd or [])))


def systemd(path):
    section = None
    exec_start = []
    for line in logical_lines(open(path).read()):
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep:
            fail(f"not a key=value line: {line}")
        if section != "Service":
            fail(f"{key}= outside [Service]")
        value = value.strip()
        if key == "ExecStart":
            exec_start.append(value)
        elif key == "Environment":
            for pair in shlex.split(value):
                emit("env", pair)
        elif key == "SuccessExitStatus":
            for status in value.split():
                emit("success", status)
    # A drop-in must clear the unit's ExecStart= before setting its own.
    if len(exec_start) != 2 or exec_start[0] != "":
        fail("expected 'ExecStart=' (empty, clearing) then one ExecStart= line")
    argv = shlex.split(exec_start[1])
    # ExecStart= prefixes (-, @, +, !) are not used here.
    if not argv[0].startswith("/"):
        fail(f"ExecStart= must start with an absolute path: {argv[0]}")
    emit("argv", *argv)


def kubernetes(path):
    try:
        import yaml
    except ImportError:
        print("SKIP: PyYAML is missing (Debian package python3-yaml)")
        sys.exit(77)
    docs = list(yaml.safe_load_all(open(path)))
    if len(docs) != 1 or docs[0].get("kind") != "Pod":
        fail("expected one Pod document")
    spec = docs[0]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    inits = spec.get("initContainers", [])
    apps = spec.get("containers", [])
    if len(inits) != 1 or len(apps) != 1:
        fail("expected one init container and one app container")
    init, app = inits[0], apps[0]

    # The init container copies the binary into a shared emptyDir volume.
    command = init.get("command", [])
    if len(command) != 3 or command[0] != "cp":
        fail(f"the init container should run cp SRC DEST: {command}")
    src, dest = command[1], command[2]
    init_mounts = {m["mountPath"]: m["name"] for m in init.get("volumeMounts", [])}
    dest_dir = dest.rsplit("/", 1)[0]
    if dest_dir not in init_mounts:
        fail(f"{dest} is not in a volume the init container mounts")
    volume = init_mounts[dest_dir]
    if "emptyDir" not in volumes.get(volume, {}):
        fail(f"volume {volume} is not an emptyDir")

    # The app container mounts the same volume at the same path and its
    # command starts with the copied binary, then "--".
    app_mounts = {m["mountPath"]: m["name"] for m in app.get("volumeMounts", [])}
    if app_mounts.get(dest_dir) != volume:
        fail(f"the app container does not mount {volume} at {dest_dir}")
    app_command = app.get("command", [])
    if not app_command or app_command[0] != dest:
        fail(f"the app's command does not start with {dest}: {app_command}")
    if "--" not in app_command[1:] or app_command.index("--") == len(app_command) - 1:
        fail(f"the app's command should be {dest} [OPTIONS] -- CMD: {app_command}")
    emit("copied-from", src)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("dockerfile", "systemd", "kubernetes"):
        fail("usage: example_files.py dockerfile|systemd|kubernetes PATH")
    globals()[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
