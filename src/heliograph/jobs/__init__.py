"""The job process: background work (experiment runs, online evaluation ticks, ...) that
``heliograph serve`` runs beside the writer, with its queue and progress in the store."""
