-- netrunbook schema, version 1. Applied by `netrunbook serve --database-url` (and `migrate`) at start,
-- under an advisory lock, in one transaction. Times in *_at bigint columns are seconds since the Unix
-- epoch as the bot's clock gave them; timestamptz columns are the database's clock (replica leases).

-- Each thread's conversation: the same versioned JSON record the sled backend keeps.
CREATE TABLE conversations (
    team       text   NOT NULL,
    channel    text   NOT NULL,
    thread_ts  text   NOT NULL,
    record     bytea  NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (team, channel, thread_ts)
);
CREATE INDEX conversations_updated_at ON conversations (updated_at);

-- Events already handled (event ids, channel + ts of posts, click and command keys).
CREATE TABLE handled_events (
    key text   PRIMARY KEY,
    at  bigint NOT NULL
);
CREATE INDEX handled_events_at ON handled_events (at);

-- Replies committed with a step and not delivered yet, oldest id first per thread.
CREATE TABLE outbox (
    id        bigserial PRIMARY KEY,
    team      text  NOT NULL,
    channel   text  NOT NULL,
    thread_ts text  NOT NULL,
    record    bytea NOT NULL
);
CREATE INDEX outbox_thread ON outbox (team, channel, thread_ts, id);

-- Answers and alerts answered, per intent and day (day = seconds / 86400).
CREATE TABLE answer_counts (
    kind   text   NOT NULL CHECK (kind IN ('answer', 'alert')),
    intent text   NOT NULL,
    day    bigint NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (kind, intent, day)
);

-- The latest vote of a person on an answer in a thread.
CREATE TABLE votes (
    team      text   NOT NULL,
    channel   text   NOT NULL,
    thread_ts text   NOT NULL,
    intent    text   NOT NULL,
    voter     text   NOT NULL,
    record    bytea  NOT NULL,
    at        bigint NOT NULL,
    PRIMARY KEY (team, channel, thread_ts, intent, voter)
);

-- Messages the bot could not answer well, one record per signature.
CREATE TABLE unanswered (
    signature text   PRIMARY KEY,
    record    bytea  NOT NULL,
    last_at   bigint NOT NULL
);

-- Replicas and their heartbeats: a replica whose heartbeat is older than the lease is dead, and its
-- claims and journaled events are taken over.
CREATE TABLE replicas (
    id         text        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- Which replica works a thread's turn right now (one at a time, so a thread's turns stay in order).
CREATE TABLE thread_claims (
    team      text        NOT NULL,
    channel   text        NOT NULL,
    thread_ts text        NOT NULL,
    owner     text        NOT NULL,
    since     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team, channel, thread_ts)
);
CREATE INDEX thread_claims_owner ON thread_claims (owner);

-- The inbox journal: events acknowledged to Slack and not finished yet, with the replica working them,
-- their thread and their `ts` (a replica that gets a thread's claim handles the thread's earlier
-- events first, so turns keep the order they were posted in whichever replica received them).
CREATE TABLE inbox (
    id           bigserial   PRIMARY KEY,
    owner        text        NOT NULL,
    entry        bytea       NOT NULL,
    team         text        NOT NULL DEFAULT '',
    channel      text        NOT NULL DEFAULT '',
    thread_ts    text        NOT NULL DEFAULT '',
    ts           text        NOT NULL DEFAULT '',
    journaled_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_owner ON inbox (owner, id);
CREATE INDEX inbox_thread ON inbox (team, channel, thread_ts);
