"""guixie's Python tracer (docs/introspection.md): a call tree of the program's own code.

guixie points PYTHONUSERBASE at a directory whose user site holds a .pth file importing
this module, so every Python process that inherits the environment is traced from its
start. When the process ends, what was seen is written to $GUIXIE_PYTRACE_DIR/pytrace-PID.json
for guixie to check and turn into a report.

Only the program's own code becomes calls: the standard library and the system's
packages are passed over. Nothing here runs the program's code: arguments of types other
than numbers, strings and bytes are shown by their type's name, so tracing cannot change
what the program does.
"""

import sys as _sys


def _install():
    import os
    import _thread

    out_dir = os.environ.get("GUIXIE_PYTRACE_DIR")
    if not out_dir or _sys.flags.ignore_environment:
        return
    max_calls = int(os.environ.get("GUIXIE_PYTRACE_MAX_CALLS", "20000"))
    max_depth = 200
    max_arg = 60
    max_args = 8

    library = tuple(
        sorted(
            {
                os.path.join(p, "lib", "python")
                for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix, "/usr/local")
            }
        )
    )
    here = __file__

    functions = []  # [qualified name, file, first line]
    counts = []  # [calls (the profiler's count), exceptions seen in kept calls] per function
    calls = []  # [parent or -1, function, thread, args, exception or None]
    kept = {}  # code -> function index, or None for code not the program's own
    stacks = {}  # thread ident -> stack of the kept calls under way
    threads = {}  # thread ident -> its number

    plain = (int, float, bool, type(None))
    type_name = type.__dict__["__name__"].__get__

    def shown(value):
        t = type(value)
        try:
            if t in plain:
                text = repr(value)
            elif t is str or t is bytes:
                text = repr(value[: max_arg + 1])
            else:
                text = "<" + type_name(t) + ">"
        except Exception:
            text = "<" + type_name(t) + ">"
        return text if len(text) <= max_arg else text[:max_arg] + "…"

    def classify(code):
        name = code.co_filename
        if name.startswith("<") or name == here or name.startswith(library):
            index = None
        else:
            index = len(functions)
            functions.append([getattr(code, "co_qualname", code.co_name), name, code.co_firstlineno])
            counts.append([0, 0])
        kept[code] = index
        return index

    def args_of(frame, code):
        n = code.co_argcount + code.co_kwonlyargcount
        n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
        names = code.co_varnames[: min(n, max_args)]
        local = frame.f_locals
        return [[a, shown(local[a])] for a in names if a in local]

    def on_call(frame, event, arg):
        code = frame.f_code
        index = kept.get(code, -2)
        if index == -2:
            index = classify(code)
        if index is None:
            return None
        if len(calls) >= max_calls:
            # The tree is full: from here on only the profiler counts, at C speed.
            _sys.settrace(None)
            threading.settrace(None)
            return None
        ident = _thread.get_ident()
        stack = stacks.get(ident)
        if stack is None:
            stack = stacks[ident] = []
            threads[ident] = len(threads)
        if len(stack) >= max_depth:
            # Not kept, and no event of its own: its returns cannot unbalance the stack.
            return None
        entry = [stack[-1] if stack else -1, index, threads[ident], args_of(frame, code), None]
        with lock:
            # One thread at a time, so that a call's index is where it lands.
            node = len(calls)
            calls.append(entry)
        stack.append(node)
        frame.f_trace_lines = False
        return on_event

    def on_event(frame, event, arg):
        if event == "return":
            stack = stacks.get(_thread.get_ident())
            if stack:
                stack.pop()
        elif event == "exception":
            stack = stacks.get(_thread.get_ident())
            index = kept.get(frame.f_code)
            if index is not None:
                counts[index][1] += 1
            if stack:
                calls[stack[-1]][4] = type_name(arg[0])
        return on_event

    def dump():
        try:
            write()
        except Exception as e:
            # The program's own exit is not to be disturbed by its tracer's failure.
            print("guixie python tracer: %r" % (e,), file=_sys.stderr)

    def write():
        _sys.settrace(None)
        threading.settrace(None)
        profiler.disable()
        import json

        for entry in profiler.getstats():
            code = entry.code
            if isinstance(code, str):
                continue
            index = kept.get(code, -2)
            if index == -2:
                index = classify(code)
            if index is not None:
                counts[index][0] = entry.callcount
        # The profiler misses a call it was enabled in (the main module's): the tree's
        # count is then the floor.
        kept_calls = [0] * len(counts)
        for c in list(calls):
            if c[1] < len(kept_calls):
                kept_calls[c[1]] += 1
        for c, k in zip(counts, kept_calls):
            c[0] = max(c[0], k)

        doc = {
            "schema": "guixie.python-trace/1",
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "argv": [str(a)[:200] for a in _sys.argv[:32]],
            "python": _sys.version.split()[0],
            "threads": len(threads),
            "functions": functions,
            "counts": counts,
            "calls": calls,
            "dropped": max(0, sum(c[0] for c in counts) - len(calls)),
        }
        path = os.path.join(out_dir, "pytrace-%d.json" % os.getpid())
        try:
            with open(path + ".part", "w", encoding="utf-8") as f:
                # dumps, not dump: only the one-shot encoder is json's C one.
                f.write(json.dumps(doc, separators=(",", ":")))
            os.rename(path + ".part", path)
        except OSError as e:
            print("guixie python tracer: writing %s: %s" % (path, e), file=_sys.stderr)

    def forked():
        # A child of fork starts its own record: its calls are its own process's.
        calls.clear()
        stacks.clear()
        threads.clear()
        for c in counts:
            c[0] = c[1] = 0
        profiler.clear()

    def profile_thread(frame, event, arg):
        # The first event of a new thread hands it to the C profiler.
        _sys.setprofile(None)
        profiler.enable(subcalls=False, builtins=False)

    import _lsprof
    import atexit
    import threading

    lock = _thread.allocate_lock()

    # Every call is counted by _lsprof (cProfile's C core); the tree is made by settrace
    # until it holds max_calls.
    profiler = _lsprof.Profiler()
    atexit.register(dump)
    os.register_at_fork(after_in_child=forked)
    threading.setprofile(profile_thread)
    threading.settrace(on_call)
    profiler.enable(subcalls=False, builtins=False)
    _sys.settrace(on_call)


_install()
del _install
