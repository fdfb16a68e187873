"""Batch generation: streaming input, worker processes, chunked resumable output, shards, merge.

:func:`molgen.batch.runner.run_batch` is the one runner behind ``molgen conformers`` and the cluster
templates in ``cli/``; :func:`molgen.batch.merge.merge_run` is ``molgen merge``.
"""
