"""The reviewers' lab: a web application (``esante serve``) where editors register their candidates and run
campaigns in sandbox, rehearsal and official sessions, and reviewers read the evidence, comment, correct a
verdict with a reason, and sign the outcome (a procès-verbal and the evidence bundles).

It is built on the harness as it is: a run is :func:`esante.harness.session.play` in a child process
(:mod:`.worker`), its reports and bundle are :mod:`esante.reports`' own, and what a reviewer does goes into the
run's evidence chain (``EvidenceStore.append``, kinds ``review.*``). The database (SQLAlchemy 2, migrated by
Alembic) indexes sessions, runs, verdicts and the audit log; the evidence stays in each run's evidence store
and bundle.

* :mod:`.models`, :mod:`.db`: the tables and the engine (SQLite by default, PostgreSQL for a shared lab);
* :mod:`.security`: passwords (argon2), API tokens, CSRF, login throttling;
* :mod:`.ops`: every operation and permission rule, used by the HTML pages (:mod:`.web`) and the JSON API
  (:mod:`.api`) alike; :mod:`.review`: what a reviewer records; :mod:`.app` and :mod:`.context`: the
  application and what each request holds;
* :mod:`.freeze`: the versions and digests an official session freezes;
* :mod:`.worker`, :mod:`.child`, :mod:`.queue`: runs in a pool of this process, or in workers on other
  machines through procrastinate (a PostgreSQL task queue); each run in a process of its own;
* :mod:`.pv`: the signed procès-verbal;
* :mod:`.serve`: ``esante serve``; :mod:`.client`: ``esante submit``, from an editor's CI.
"""
