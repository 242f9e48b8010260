"""The kernel every findap process shares: settings, the database and its rows, the queue, the
model catalog, the pairs export, the metrics store, process helpers. It imports no process
package (API, worker, trainer, command line)."""
