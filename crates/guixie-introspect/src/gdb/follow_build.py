# Run by gdb (build_args): the builder and every process it starts are gdb's inferiors
# (detach-on-fork off), all resumed together, until one receives a signal that stops it
# (a crash) or none is left. Written to gdb's log, read by parse_batch_log. gdb then
# exits as the build would have: with the builder's status, or 128 + the signal's number.
import signal

import gdb

MAX_FRAMES = int("@MAX_FRAMES@")
builder_end = None
crashed = None


def on_exit(event):
    global builder_end
    if event.inferior.num == 1 and hasattr(event, "exit_code"):
        builder_end = (event.inferior.pid, event.exit_code)


def on_stop(event):
    global crashed
    if crashed is None and isinstance(event, gdb.SignalEvent):
        crashed = (gdb.selected_inferior(), event.stop_signal)


gdb.events.exited.connect(on_exit)
gdb.events.stop.connect(on_stop)
gdb.execute("run")
while crashed is None:
    for gone in [i for i in gdb.inferiors() if i.pid == 0 and i.num != 1]:
        # An exited process's inferior is dropped: a build starts thousands.
        try:
            gdb.execute("inferior 1", to_string=True)
            gdb.execute("remove-inferiors %d" % gone.num, to_string=True)
        except gdb.error:
            pass
    live = [i for i in gdb.inferiors() if i.pid != 0]
    if not live:
        break
    chosen = live[0]
    try:
        gdb.execute("inferior %d" % chosen.num, to_string=True)
        gdb.execute("continue")
    except gdb.error:
        # Its process is gone without gdb seeing it end (its parent reaped it first).
        try:
            gdb.execute("detach inferiors %d" % chosen.num, to_string=True)
        except gdb.error:
            pass
        if chosen.pid != 0:
            gdb.write("guixie-gdb: lost process %d\n" % chosen.pid)
            break
status = 1
if crashed is not None:
    inferior, name = crashed
    gdb.write("guixie-gdb: crashed process %d %s\n" % (inferior.pid, inferior.progspace.filename))
    gdb.execute("thread apply %d.* bt %d" % (inferior.num, MAX_FRAMES))
    try:
        status = 128 + signal.Signals[name].value
    except KeyError:
        pass
elif builder_end is not None:
    # gdb's own words for how the builder ended, said last.
    pid, status = builder_end
    if status == 0:
        gdb.write("[Inferior 1 (process %d) exited normally]\n" % pid)
    else:
        gdb.write("[Inferior 1 (process %d) exited with code %02o]\n" % (pid, status))
gdb.execute("set confirm off")
gdb.execute("quit %d" % status)
