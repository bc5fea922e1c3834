"""Scheduling: when jobs run, and the service that runs them (``respaldo serve``).

Words used here:

- *schedule* (:class:`~respaldo.operations.schedule.Entry`): a name (``full:erp``,
  ``cleanup``), a cron expression in ``[schedules] time_zone``, and the job it submits.
- *service* (:class:`~respaldo.scheduling.service.Service`): APScheduler firing the
  schedules in this process; each firing submits a job and runs it in a worker thread.

This package calls the application layer only (``respaldo.operations``: submit and run
jobs); it knows nothing of what a job does inside.
"""
