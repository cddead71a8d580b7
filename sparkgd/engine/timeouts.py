"""Every timeout and poll interval of the engine, in seconds, with the reason for its value.

Those a user may need to tune are read from the Spark conf (SparkConf or the session's conf) under
the key next to them; the rest are safety nets that a healthy run never reaches.
"""

from __future__ import annotations

# -- resident tasks: starting (engine/resident.py) -----------------------------------------------
START = 20.0
"""All resident tasks must have connected within this long, or the job is cancelled and the call runs
one Spark job per iteration. Long enough for a first launch of Python workers on a loaded executor."""
START_KEY = "spark.sparkgd.resident.startTimeout"

BUSY_AFTER = 2.0
"""Once started this long (and at least ``spark.locality.wait`` plus a quarter of this), a start whose own
tasks still wait for a slot gives up (the slots are busy): a launch on free slots takes well under a second."""

HAND_OVER = 0.3
"""Another job of the application with tasks waiting this long for a slot makes idle resident tasks (and
waiting block builders) hand their slots over: long enough not to react to a job that starts and ends
between two iterations, short enough that a callback's job is not held up."""
HAND_OVER_KEY = "spark.sparkgd.resident.handOverAfter"

# -- the channel (engine/executor.py and the driver's end) ----------------------------------------
CONNECT = 30.0
"""A task's TCP connect to the driver or to the root: the peer listens already, so only a dead network
takes this long."""

HANDSHAKE = 10.0
"""A connection must finish the challenge-response within this long, or it is refused (a stray or hostile
client must not hold an accept loop)."""

CHILDREN = 60.0
"""The root waits this long for the other tasks to connect; the driver gives up the start (and cancels
the job) well before, at :data:`START`."""

SUMMARY = 30.0
"""A block builder's summary follows its handshake at once; only a dying task is slower."""

STOP_SEND = 1.0
"""Sending STOP to a task: best effort, the job is cancelled after it anyway."""

# -- the driver's polling ---------------------------------------------------------------------------
ACCEPT_POLL = 0.1
"""The driver's listening socket wakes this often to check its job and its deadlines."""

WATCH_POLL = 0.1
"""The hand-over watchers look at the other jobs' waiting tasks this often (a status-tracker read)."""

ROOT_POLL = 1.0
"""While it waits for an iteration's sums, the driver checks this often that the resident job still runs."""

QUIET = 0.05
"""Before starting resident tasks, a call waits for no other job of the application to run for this long
(engine/aggregation.py): other work goes first."""

QUIET_POLL = 0.01
"""... polling the status tracker this often."""

QUIET_WAIT = 1.0
"""... for at most this long in all; then it runs Spark jobs and tries again later."""

# -- the driver: stopping ---------------------------------------------------------------------------
JOB_END = 10.0
"""After STOP, or once the channel broke, the resident job ends within this long (its tasks return at
once); then it is cancelled."""

CANCEL = 60.0
"""Cancelling by tag is repeated for this long until the job is gone (a job submitted just after a cancel
would otherwise keep its slots) and its tasks have left their slots (Spark kills a Python task that does
not end by itself after ``spark.python.task.killTimeout``, 2 s by default)."""

CANCEL_POLL = 0.2
"""... once per this interval."""

WATCHER_JOIN = 5.0
"""A watcher thread ends within one :data:`WATCH_POLL`; this bound only keeps a stuck one from blocking stop."""

FINISH = 30.0
"""At ``SparkContext.stop`` and interpreter exit, block builders that were told to stop get this long to
hand their blocks to Spark's cache."""

# -- training calls of one process taking turns (engine/turns.py) ----------------------------------
SLICE = 2.0
"""A holder keeps the turn this long while another call waits."""

PATIENCE = 30.0
"""A call waits this long for the turn, then goes on without it rather than risk a deadlock."""

TURN_POLL = 0.5
"""A waiting call re-checks its deadline this often (a released turn wakes it at once)."""

# -- Spark Connect: the loop in a task (engine/remote.py) -------------------------------------------
CHUNK = 10.0
"""A task runs iterations for about this long, then returns the loop's state to the client, which starts
the next chunk: other jobs get the slots between chunks, and a lost task costs at most one chunk."""
CHUNK_KEY = "spark.sparkgd.connect.chunkSeconds"

CHUNK_ITERATIONS = 1000
"""... and at most this many iterations."""
