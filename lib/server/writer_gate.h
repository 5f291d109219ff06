/*
 * One writer at a time per SQLite file, among this process's connections,
 * woken as soon as the writer before is done. SQLite itself lets one writer
 * at a time and makes the others poll: its busy handler sleeps 1, 2, 5 and
 * more milliseconds between tries, so a loop thread waiting for another's
 * transaction of a tenth of a millisecond sleeps ten times as long, with all
 * its connections (docs/benchmarks.md: the conductor's setup). The store takes
 * the gate of its file around each write transaction; other processes still
 * meet SQLite's busy handler, and a writer that never finishes still times
 * out, as SQLite's busy timeout did.
 */
#ifndef ONRAMP_SERVER_WRITER_GATE_H
#define ONRAMP_SERVER_WRITER_GATE_H

struct writer_gate;

/*
 * The gate of a database file (the same for every path naming it), made on
 * first use and kept for the process. NULL for ":memory:" (private to its
 * connection) or when the file cannot be named; the caller then goes without.
 */
struct writer_gate *writer_gate_of(const char *path);

/*
 * Waits at most timeout_ms for the gate: 0 when taken, -1 with or_error when
 * it stayed closed that long. The gate belongs to no thread: a thread that
 * enters twice waits for itself until the timeout, as a second SQLite
 * connection of one thread waited for the first's write lock.
 */
int writer_gate_enter(struct writer_gate *gate, unsigned timeout_ms);

/* Opens the gate for the next writer (after a writer_gate_enter that returned 0). */
void writer_gate_leave(struct writer_gate *gate);

#endif
