//! The API described as OpenAPI 3.1, served at /api/openapi.json.

use axum::Json;
use serde_json::{json, Value};

fn op(summary: &str, params: &[&str], body: Option<Value>, ok: u16, ok_schema: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "parameters": params.iter().map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } })).collect::<Vec<_>>(),
        "responses": {
            ok.to_string(): { "description": "ok", "content": { "application/json": { "schema": ok_schema } } },
            "4XX": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    });
    if let Some(b) = body {
        o["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": b } } });
    }
    o
}

fn text_op(summary: &str, params: &[&str]) -> Value {
    json!({
        "summary": summary,
        "parameters": params.iter().map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } })).collect::<Vec<_>>(),
        "responses": { "200": { "description": "ok", "content": { "text/plain": { "schema": { "type": "string" } } } } }
    })
}

/// The body of `POST /api/tasks` (a race's fields too).
fn add_task_body() -> Value {
    json!({ "type": "object", "required": ["prompt"], "properties": { "prompt": { "type": "string" }, "agent": { "type": ["string", "null"] }, "tags": { "type": "array", "items": { "type": "string" } }, "candidates": { "type": ["integer", "null"], "minimum": 2, "maximum": 10 }, "agents": { "type": "array", "items": { "type": "string" } }, "pick": { "type": ["string", "null"], "enum": ["first", "all", "judge", null] }, "judge": { "type": ["string", "null"] }, "rank_by": { "type": "array", "items": { "type": "string", "enum": ["gates", "diff_lines", "cost", "time"] } }, "rank": { "type": ["string", "null"] } } })
}

pub async fn document() -> Json<Value> {
    let obj = json!({ "type": "object" });
    let rt = &["run", "task"];
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "baton", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Runs, tasks and events of baton, and actions on them. Beyond loopback every request needs `Authorization: Bearer <token>` (`baton token new`) or the session cookie from POST /api/session. Actions need a JSON body." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] },
                "Report": { "type": "object", "required": ["run", "status", "integration_branch", "tasks"],
                    "properties": { "run": { "type": "string" }, "status": { "type": "string" }, "integration_branch": { "type": "string" },
                        "tasks": { "type": "array", "items": { "$ref": "#/components/schemas/Task" } } } },
                "Task": { "type": "object", "required": ["id", "status", "attempts", "branch", "merged"],
                    "properties": { "id": { "type": "string" }, "status": { "type": "string", "enum": ["pending", "running", "awaiting_approval", "merging", "succeeded", "failed", "stopped", "conflicted", "skipped"] },
                        "attempts": { "type": "integer" }, "branch": { "type": "string" }, "commit": { "type": ["string", "null"] }, "merged": { "type": "boolean" },
                        "result": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] }, "activity": { "type": ["string", "null"] },
                        "usage": { "type": "object", "properties": { "input_tokens": { "type": ["integer", "null"] }, "output_tokens": { "type": ["integer", "null"] }, "cost_usd": { "type": ["number", "null"] } } } } },
                "Event": { "type": "object", "required": ["seq", "run_id", "ts", "kind", "data"],
                    "properties": { "seq": { "type": "integer" }, "run_id": { "type": "string" }, "ts": { "type": "integer" }, "task_id": { "type": ["string", "null"] }, "attempt": { "type": ["integer", "null"] }, "kind": { "type": "string" }, "data": { "type": "object" } } },
                "ActionResult": { "type": "object", "properties": { "ok": { "type": "boolean" }, "message": { "type": "string" } } }
            }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/health": { "get": op("Liveness and version", &[], None, 200, obj.clone()) },
            "/api/hooks/github": { "post": {
                "summary": "A GitHub webhook (issues, issue_comment, ping) for a [[source]] with webhook_secret_env: taken only when X-Hub-Signature-256 signs the raw body; wakes the source (202). Needs no baton token.",
                "security": [],
                "requestBody": { "required": true, "content": { "application/json": { "schema": obj.clone() } } },
                "responses": {
                    "200": { "description": "received, nothing to do", "content": { "application/json": { "schema": obj.clone() } } },
                    "202": { "description": "the source looks at once", "content": { "application/json": { "schema": obj.clone() } } },
                    "4XX": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                } } },
            "/api/hooks/{name}": { "post": {
                "summary": "A delivery for the served plan's [[hook]] `name`: proven by X-Hub-Signature-256 (HMAC-SHA256 of the raw body under the hook's secret) or by the hook's own token (Authorization: Bearer); starts its plan (the body as the run's payload) or queues its task (the prompt rendered with the body as payload). Needs no baton token.",
                "security": [],
                "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": obj.clone() } } },
                "responses": {
                    "202": { "description": "started: `run` (and `task` for a prompt hook)", "content": { "application/json": { "schema": obj.clone() } } },
                    "4XX": { "description": "not proven (401), no such hook (404), not JSON (400), a prompt the delivery cannot make (422)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                } } },
            "/api/incoming": { "get": op("Where work comes in from: the served plan's sources (with the items taken lately, each with its run and task), schedules (with their next time and what they started last) and hooks", &[], None, 200, obj.clone()) },
            "/api/stats": { "get": op("The scorecard: per profile (?by=profile, the default), model (?by=model) or tag and profile (?by=tag), over the runs since ?since= (default 30d): tasks finished, first-try successes, successes after retries, failures, gate failures, mean and p90 time, mean cost, races won and lost as a candidate; best first", &[], None, 200, obj.clone()) },
            "/api/runs": {
                "get": op("Runs, newest first", &[], None, 200, obj.clone()),
                "post": op("Start a run of a plan file in the repository (`plan`), or of plan text (`source`); `proposal` (a planner's run) says yes to its plan, as written or as `source`", &[], Some(json!({ "type": "object", "properties": { "plan": { "type": "string" }, "source": { "type": "string" }, "proposal": { "type": "string" } } })), 201, json!({ "type": "object", "properties": { "run": { "type": "string" } } }))
            },
            "/api/plans": {
                "post": op("Have a planner agent propose a plan for a goal; answers the planner's run", &[], Some(json!({ "type": "object", "required": ["goal"], "properties": { "goal": { "type": "string" }, "agent": { "type": "string" } } })), 201, json!({ "type": "object", "properties": { "run": { "type": "string" } } }))
            },
            "/api/plans/{run}": {
                "get": op("A proposed plan: planning, ready (its TOML, tasks and the planner's words; `decided` once it was run or discarded) or failed (why, and its draft)", &["run"], None, 200, obj.clone())
            },
            "/api/plans/{run}/discard": {
                "post": op("Say no to a proposed plan: it leaves the inbox", &["run"], Some(obj.clone()), 200, obj.clone())
            },
            "/api/runs/{run}": { "get": op("A run's report", &["run"], None, 200, json!({ "$ref": "#/components/schemas/Report" })) },
            "/api/runs/{run}/usage": { "get": op("Tokens and cost per task and in all", &["run"], None, 200, obj.clone()) },
            "/api/runs/{run}/events": { "get": op("A run's events after ?after=SEQ", &["run"], None, 200, json!({ "type": "object", "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } } } })) },
            "/api/runs/{run}/tasks/{task}": { "get": op("A task and its attempts", rt, None, 200, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/attempts": { "get": op("A task's attempts", rt, None, 200, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/transcript": { "get": op("A task's events: messages, tool calls, gates, merges", rt, None, 200, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/diff": { "get": text_op("The task's changes against where it started", rt) },
            "/api/runs/{run}/tasks/{task}/log": { "get": text_op("Raw output of an attempt (?attempt=N, default the last)", rt) },
            "/api/runs/{run}/tasks/{task}/stop": { "post": op("Stop a running or waiting task", rt, Some(obj.clone()), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/runs/{run}/tasks/{task}/steer": { "post": op("Steer a task: a new attempt with the message as feedback (Claude Code: a new turn)", rt, Some(json!({ "type": "object", "required": ["message"], "properties": { "message": { "type": "string" } } })), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/runs/{run}/tasks/{task}/messages": {
                "get": op("The messages sent to a task", rt, None, 200, obj.clone()),
                "post": op("Send a task a message: a running Claude Code gets it at once, other agents with their next attempt", rt, Some(json!({ "type": "object", "required": ["text"], "properties": { "text": { "type": "string" } } })), 200, obj.clone())
            },
            "/api/runs/{run}/tasks/{task}/approve": { "post": op("Approve a task that waits for a person", rt, Some(obj.clone()), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/runs/{run}/tasks/{task}/retry": { "post": op("Run a failed, stopped, conflicted or skipped task again", rt, Some(obj.clone()), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/tasks": { "post": op("Queue a task (routed to a profile by agent or tags); with candidates or agents, a race whose winner alone merges", &[], Some(add_task_body()), 201, json!({ "type": "object", "properties": { "run": { "type": "string" }, "task": { "type": "string" } } })) },
            "/api/session": { "post": op("Trade a Bearer token for a session cookie", &[], Some(obj.clone()), 200, obj.clone()) },
            "/api/events": { "get": { "summary": "Server-Sent Events of every run; resumes from Last-Event-ID or ?after=SEQ",
                "responses": { "200": { "description": "event stream", "content": { "text/event-stream": { "schema": { "$ref": "#/components/schemas/Event" } } } } } } }
        }
    });
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), person_paths()) {
        paths.extend(more);
    }
    // Beside the rest: one more path in the literal above passes the macro's depth.
    doc["paths"]["/api/runs/{run}/tasks/{task}/pick"] = json!({ "post": op("Make another candidate (body `message`: its id or number) a race's winner, while the race waits for approval", rt, Some(json!({ "type": "object", "required": ["message"], "properties": { "message": { "type": "string" } } })), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) });
    doc["paths"]["/api/repos"] = json!({ "get": op("The repositories this server serves (name, root, api). With one, its API is /api as documented here; with several, every repository's path below is under its api, /api/repos/<name>, and the bare /api answers only health, openapi.json, session and repos", &[], None, 200, json!({ "type": "object" })) });
    Json(doc)
}

/// What needs a person: the inbox, action links, Web Push.
fn person_paths() -> Value {
    let obj = json!({ "type": "object" });
    json!({
            "/api/inbox": { "get": op("Everything that needs a person across runs: `items` (each: id, kind question|approval|failed|conflicted|limit|pull, run, task, text, options, since, actions) and their `count`", &[], None, 200, obj.clone()) },
            "/api/inbox/{id}/{action}": { "post": op("Act on inbox item `id`: `answer` (body `text`; a question with options takes one of them), `approve`, `retry` or `stop`, as its `actions` allow", &["id", "action"], Some(json!({ "type": "object", "properties": { "text": { "type": "string" } } })), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/act/{token}": {
                "get": { "summary": "What a notification's signed action link would do, as a page with a button (acts on nothing). Needs no baton token.", "security": [], "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "a page" } } },
                "post": { "summary": "Does what a notification's signed action link says, once: 401 forged, 410 used or expired or its item gone, 409 its item no longer allows it. Needs no baton token.", "security": [], "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }], "responses": { "200": { "description": "done", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ActionResult" } } } } } }
            },
            "/api/runs/{run}/tasks/{task}/review": { "get": op("A task's review comments (drafts and sent), each with its `mark`: draft, sent, changed (its lines changed since: addressed?), unchanged, gone", &["run", "task"], None, 200, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/review/comments": { "post": op("Keep a draft comment on a line of the task's work as it is now (`path`, `line`, `text`)", &["run", "task"], Some(json!({ "type": "object", "required": ["path", "line", "text"], "properties": { "path": { "type": "string" }, "line": { "type": "integer" }, "text": { "type": "string" } } })), 201, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/review/comments/{id}": { "delete": op("Drop a draft comment", &["run", "task", "id"], None, 200, obj.clone()) },
            "/api/runs/{run}/tasks/{task}/review/submit": { "post": op("Send the drafts (and an optional `note`) to the task's agent as one review: a running agent as a message, otherwise a new attempt; no retry is used", &["run", "task"], Some(json!({ "type": "object", "properties": { "note": { "type": "string" } } })), 200, json!({ "$ref": "#/components/schemas/ActionResult" })) },
            "/api/push/key": { "get": op("The server's VAPID public key (base64url): the applicationServerKey a browser subscribes to Web Push with", &[], None, 200, obj.clone()) },
            "/api/push/subscriptions": {
                "post": op("Keep a browser's Web Push subscription (PushSubscription.toJSON(): endpoint, keys.p256dh, keys.auth)", &[], Some(json!({ "type": "object", "required": ["endpoint", "keys"], "properties": { "endpoint": { "type": "string" }, "keys": { "type": "object", "properties": { "p256dh": { "type": "string" }, "auth": { "type": "string" } } } } })), 201, obj.clone()),
                "delete": op("Forget a subscription (`endpoint`)", &[], Some(json!({ "type": "object", "required": ["endpoint"], "properties": { "endpoint": { "type": "string" } } })), 200, obj.clone())
            }
    })
}
