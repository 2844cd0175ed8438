"""The lab process: moto as AWS, the metadata service, the journal, and the warm `aws` it starts.

    python -m labkit.labprocess.main --home DIR      # started by `labkit up` or labkit.connect()

Nothing here is imported by the student's kernel or the `labkit` command: they reach the lab over
HTTP and agree with it only through labkit.protocol and labkit.statedir.

    main.py        the process: the API port (moto + /_labkit/ control) and the metadata port
    backends.py    Cloud: moto's backends, bootstrap, resets, one seed; ties recovery, facts and sessions
    recovery.py    every change journaled, undone when it cannot be, snapshotted, and replayed after a crash
    replay.py      whether the journal is being replayed: the one switch everything else asks
    facts.py       what the metadata service reads about an instance
    sessions.py    the role sessions the metadata service hands out
    keys.py        fresh access keys and secrets, never seeded (below backends and motofixes)
    imds.py        the Instance Metadata Service (IMDSv1 and v2), as an HTTP proxy
    metadata_tree.py      the metadata service's paths for one instance, and what they hold
    metadata_identity.py  the instance identity document's signatures (a key of the lab's own)
    propagation.py the opt-in delay of IAM changes (`labkit up --iam-delay N`), and what is noted of them
    options.py     options.json: the options that outlive a restart (`--iam-delay`, `--sealed`)
    snapshot.py    the lab's state saved every few hundred changes, so restoring stays quick
    gate.py        what both ports accept before reading a body: unsigned, oversized, malformed, silent
    journal.py     the durable record of changes, replayed after a crash
    motofixes/     every change the lab makes to moto, botocore and awscli: one record each
    botodata.py    botocore's data files, decoded once per process
    cliserver.py   the warm `aws` of instances (its own process, started by main.py)
    aws_request.py what the warm `aws` reads of a request, and how it refuses one
    sandbox.py     sealed instances (`labkit up --sealed`): each running instance's namespaces, and
                   what the lab serves inside them (labkit/seal/sandbox_init.py is their PID 1)
    resolver.py    the DNS server at 169.254.169.253 inside each sealed instance: AWS's names, buckets'
    storage_access.py  what S3 and DynamoDB add to a decision: actions, resources, bucket policies, refusals
    storage_limits.py  the lab's own limits on what S3 keeps (5 MiB an object, 100 MiB in all)
"""
