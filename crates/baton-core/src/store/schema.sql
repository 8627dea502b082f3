CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    plan_path TEXT NOT NULL,
    plan_source TEXT NOT NULL,
    base TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    integration_branch TEXT NOT NULL,
    worktrees_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    id TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    branch TEXT NOT NULL,
    worktree TEXT,
    start_commit TEXT,
    commit_id TEXT,
    merged INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    reason TEXT,
    feedback TEXT,
    files TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    status TEXT NOT NULL,
    pgid INTEGER,
    exit_code INTEGER,
    reason TEXT,
    log_path TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (run_id, task_id, n)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    task_id TEXT,
    attempt INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS controls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT,
    created_at INTEGER NOT NULL,
    handled_at INTEGER,
    ok INTEGER,
    response TEXT
);
CREATE INDEX IF NOT EXISTS controls_pending ON controls (run_id, handled_at);
CREATE TABLE IF NOT EXISTS added_tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    snippet TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    label TEXT,
    created_at INTEGER NOT NULL
);

-- Port blocks held by running tasks of any run in this repository
-- (`[workspace] ports`); `pid` is the baton process that holds them.
CREATE TABLE IF NOT EXISTS ports (
    port INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    pid INTEGER NOT NULL
);
