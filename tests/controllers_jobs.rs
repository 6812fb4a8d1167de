//! The Job, CronJob and TTL-after-finished controllers against a real `k3rs server
//! --disable-agent`. No kubelet runs: pods stay Pending and the tests write their phase as a
//! kubelet would (`Succeeded`/`Failed` with a terminated container state).

mod common;

use common::TestServer;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::{Instant, sleep};

const NS: &str = "default";

async fn start() -> (TestServer, Client) {
    // A short recreation backoff so failure tests take milliseconds, not tens of seconds.
    let ts = TestServer::start_with(&["--job-backoff-base-ms", "100"]);
    let kc = kube::config::Kubeconfig::read_from(ts.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(cfg).unwrap();
    (ts, client)
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

fn job(name: &str, spec: Value) -> Job {
    let mut j = json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}]}}}
    });
    for (k, v) in spec.as_object().unwrap() {
        j["spec"][k] = v.clone();
    }
    serde_json::from_value(j).unwrap()
}

async fn pods_of(client: &Client, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Running pods of the job: not finished and not being deleted.
async fn active(client: &Client, job: &str) -> Vec<Pod> {
    pods_of(client, job)
        .await
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .collect()
}

/// Wait until exactly `n` pods of the job run, asserting on every look that no more than
/// `max` do.
async fn wait_active(client: &Client, job: &str, n: usize, max: usize) -> Vec<Pod> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let running = active(client, job).await;
        assert!(
            running.len() <= max,
            "{job}: {} pods run at once",
            running.len()
        );
        if running.len() == n {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} pods of {job}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Finish a pod as a kubelet would report it.
async fn finish(client: &Client, pod: &Pod, phase: &str) {
    let code = if phase == "Succeeded" { 0 } else { 1 };
    finish_with(client, pod, phase, code).await;
}

async fn finish_with(client: &Client, pod: &Pod, phase: &str, code: i32) {
    let now = jiff::Timestamp::now().to_string();
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase, "containerStatuses": [{
                "name": "c", "image": "busybox:1.36", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code,
                    "startedAt": now, "finishedAt": now}}}]}})),
        )
        .await
        .unwrap();
}

async fn get_job(client: &Client, name: &str) -> Job {
    Api::<Job>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

fn cond<'a>(j: &'a Job, t: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t && c.status == "True")
}

async fn events(client: &Client, regarding: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn has_event(client: &Client, regarding: &str, reason: &str, note_prefix: &str) -> bool {
    events(client, regarding)
        .await
        .iter()
        .any(|(r, n)| r == reason && n.starts_with(note_prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_runs_at_most_parallelism_pods_until_completions_succeed() {
    let (ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let j = jobs
        .create(
            &PostParams::default(),
            &job("work", json!({"completions": 3, "parallelism": 2})),
        )
        .await
        .unwrap();
    // The API server generated the selector and the template labels, as upstream.
    let uid = j.metadata.uid.clone().unwrap();
    let sel = j.spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(
        sel.match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
        uid
    );
    let tl = j
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .clone()
        .unwrap()
        .labels
        .unwrap();
    for (k, v) in [
        ("batch.kubernetes.io/job-name", "work"),
        ("job-name", "work"),
        ("controller-uid", uid.as_str()),
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
    ] {
        assert_eq!(tl.get(k).map(String::as_str), Some(v), "{k}");
    }
    // A user selector without manualSelector is refused like upstream.
    let err = ts.fails(
        "kubectl",
        &[
            "create",
            "-f",
            &ts.file(
                "bad.yaml",
                br#"{"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "bad"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}}"#,
            ),
        ],
    );
    assert!(err.contains("`selector` not auto-generated"), "{err}");

    // Finish pods one at a time; never more than two run at once.
    for done in 1..=3 {
        let want = 2.min(3 - (done - 1));
        let running = wait_active(&client, "work", want, 2).await;
        let p = &running[0];
        assert!(
            p.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "batch.kubernetes.io/job-tracking")
        );
        finish(&client, p, "Succeeded").await;
        wait_for("the success to be counted", 15, || async {
            get_job(&client, "work")
                .await
                .status
                .and_then(|s| s.succeeded)
                == Some(done as i32)
        })
        .await;
    }
    let out = ts.ok(
        "kubectl",
        &[
            "wait",
            "--for=condition=complete",
            "job/work",
            "--timeout=20s",
        ],
    );
    assert!(out.contains("condition met"), "{out}");
    let j = get_job(&client, "work").await;
    let st = j.status.clone().unwrap();
    assert_eq!((st.succeeded, st.failed, st.active), (Some(3), None, None));
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    assert!(cond(&j, "SuccessCriteriaMet").is_some());
    assert_eq!(
        cond(&j, "Complete").unwrap().reason.as_deref(),
        Some("CompletionsReached")
    );
    let pods = pods_of(&client, "work").await;
    assert_eq!(pods.len(), 3, "exactly completions pods were created");
    assert!(
        pods.iter().all(|p| p.metadata.finalizers.is_none()
            || p.metadata.finalizers.as_ref().unwrap().is_empty())
    );
    wait_for("Completed event", 10, || async {
        has_event(&client, "work", "Completed", "Job completed").await
            && has_event(&client, "work", "SuccessfulCreate", "Created pod: work-").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_fail_past_the_backoff_limit_or_the_active_deadline() {
    let (ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"activeDeadlineSeconds": 2, "parallelism": 2, "completions": 4}),
        ),
    )
    .await
    .unwrap();
    for attempt in 1..=2 {
        let running = wait_active(&client, "flaky", 1, 1).await;
        assert_eq!(pods_of(&client, "flaky").await.len(), attempt);
        finish(&client, &running[0], "Failed").await;
    }
    let out = ts.ok(
        "kubectl",
        &[
            "wait",
            "--for=condition=failed",
            "job/flaky",
            "--timeout=20s",
        ],
    );
    assert!(out.contains("condition met"), "{out}");
    let j = get_job(&client, "flaky").await;
    assert_eq!(
        cond(&j, "Failed").unwrap().reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        cond(&j, "FailureTarget").unwrap().reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
    assert_eq!(pods_of(&client, "flaky").await.len(), 2, "no third attempt");
    assert!(has_event(&client, "flaky", "BackoffLimitExceeded", "Job has reached").await);

    // The pods of `slow` never finish; the deadline fails the job and removes them.
    wait_for("slow to hit its deadline", 20, || async {
        cond(&get_job(&client, "slow").await, "Failed").is_some()
    })
    .await;
    let j = get_job(&client, "slow").await;
    assert_eq!(
        cond(&j, "Failed").unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
    let st = j.status.unwrap();
    assert_eq!((st.active, st.failed, st.succeeded), (None, Some(2), None));
    wait_for("slow's pods to be gone", 10, || async {
        pods_of(&client, "slow").await.is_empty()
    })
    .await;
    assert!(has_event(&client, "slow", "DeadlineExceeded", "Job was active longer").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failure_policy_ignores_or_fails_the_job_by_exit_code() {
    let (ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let spec = json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In",
            "values": [42]}}]}});
    jobs.create(&PostParams::default(), &job("pfp", spec))
        .await
        .unwrap();
    let first = wait_active(&client, "pfp", 1, 1).await;
    finish_with(&client, &first[0], "Failed", 3).await;
    // Ignored: replaced without counting, although backoffLimit is 0.
    let mut second = Vec::new();
    for _ in 0..150 {
        second = active(&client, "pfp").await;
        if second.len() == 1 && second[0].metadata.uid != first[0].metadata.uid {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        second[0].metadata.uid, first[0].metadata.uid,
        "no replacement"
    );
    let j = get_job(&client, "pfp").await;
    assert_eq!(j.status.as_ref().unwrap().failed.unwrap_or(0), 0);
    assert!(cond(&j, "Failed").is_none());
    finish_with(&client, &second[0], "Failed", 42).await;
    ts.ok(
        "kubectl",
        &["wait", "--for=condition=failed", "job/pfp", "--timeout=20s"],
    );
    let j = get_job(&client, "pfp").await;
    let c = cond(&j, "Failed").unwrap();
    assert_eq!(c.reason.as_deref(), Some("PodFailurePolicy"));
    assert!(
        c.message
            .as_deref()
            .unwrap()
            .contains("failed with exit code 42 matching FailJob rule at index 1"),
        "{c:?}"
    );
    assert_eq!(j.status.unwrap().failed, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_job_waits_and_work_queue_job_ends_with_its_first_success() {
    let (ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    // Work queue: no completions; parallelism pods run until one succeeds and the rest end.
    let queue = job("queue", json!({"parallelism": 3}));
    let mut queue = serde_json::to_value(queue).unwrap();
    queue["spec"]["completions"] = Value::Null;
    let queue: Job = serde_json::from_value(queue).unwrap();
    jobs.create(&PostParams::default(), &queue).await.unwrap();
    jobs.create(
        &PostParams::default(),
        &job("later", json!({"suspend": true})),
    )
    .await
    .unwrap();
    let running = wait_active(&client, "queue", 3, 3).await;
    finish(&client, &running[0], "Succeeded").await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pods_of(&client, "queue").await.len(),
        3,
        "no new pod after a success"
    );
    for p in &running[1..] {
        finish(&client, p, "Succeeded").await;
    }
    ts.ok(
        "kubectl",
        &[
            "wait",
            "--for=condition=complete",
            "job/queue",
            "--timeout=20s",
        ],
    );
    let st = get_job(&client, "queue").await.status.unwrap();
    assert_eq!((st.succeeded, st.failed), (Some(3), None));

    // Suspended: no pods, a Suspended condition, no start time; resuming starts it.
    wait_for("the Suspended condition", 10, || async {
        cond(&get_job(&client, "later").await, "Suspended").is_some()
    })
    .await;
    assert!(pods_of(&client, "later").await.is_empty());
    assert!(
        get_job(&client, "later")
            .await
            .status
            .unwrap()
            .start_time
            .is_none()
    );
    jobs.patch(
        "later",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    wait_active(&client, "later", 1, 1).await;
    // The controller creates the pod first and writes the job's status after it.
    wait_for("the Suspended condition to clear", 10, || async {
        cond(&get_job(&client, "later").await, "Suspended").is_none()
    })
    .await;
    let j = get_job(&client, "later").await;
    assert!(j.status.unwrap().start_time.is_some());
    assert!(has_event(&client, "later", "Resumed", "Job resumed").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_job_releases_its_running_pods() {
    let (ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(
        &PostParams::default(),
        &job("doomed", json!({"parallelism": 2, "completions": 2})),
    )
    .await
    .unwrap();
    wait_active(&client, "doomed", 2, 2).await;
    // kubectl deletes in the background: the Job goes at once, the collector deletes the
    // pods, and their tracking finalizers must not keep them around.
    ts.ok("kubectl", &["delete", "job", "doomed"]);
    wait_for("doomed's pods to be gone", 15, || async {
        pods_of(&client, "doomed").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_completes_every_index_and_is_deleted_after_its_ttl() {
    let (_ts, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3,
                "ttlSecondsAfterFinished": 1}),
        ),
    )
    .await
    .unwrap();
    let index = |p: &Pod| -> String {
        p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone()
    };
    let running = wait_active(&client, "idx", 3, 3).await;
    let got: BTreeSet<String> = running.iter().map(index).collect();
    assert_eq!(got, ["0", "1", "2"].map(String::from).into_iter().collect());
    for p in &running {
        let i = index(p);
        assert_eq!(p.labels()["batch.kubernetes.io/job-completion-index"], i);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        let e = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .unwrap();
        let path = &e
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path;
        assert_eq!(
            path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert!(p.name_any().starts_with(&format!("idx-{i}-")));
    }
    for p in &running {
        match index(p).as_str() {
            "1" => finish(&client, p, "Failed").await,
            _ => finish(&client, p, "Succeeded").await,
        }
    }
    wait_for("indexes 0 and 2 to complete", 15, || async {
        get_job(&client, "idx")
            .await
            .status
            .and_then(|s| s.completed_indexes)
            .as_deref()
            == Some("0,2")
    })
    .await;
    // Index 1 is retried (after the backoff), and only index 1.
    let retry = wait_active(&client, "idx", 1, 3).await;
    assert_eq!(index(&retry[0]), "1");
    finish(&client, &retry[0], "Succeeded").await;
    wait_for("idx to complete", 15, || async {
        let j = get_job(&client, "idx").await;
        cond(&j, "Complete").is_some()
    })
    .await;
    let st = get_job(&client, "idx").await.status.unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((st.succeeded, st.failed), (Some(3), Some(1)));
    // ttlSecondsAfterFinished: 1 → the job goes, and its pods with it.
    wait_for("the ttl to delete idx", 15, || async {
        jobs.get_opt("idx").await.unwrap().is_none()
    })
    .await;
    wait_for("idx's pods to be collected", 15, || async {
        pods_of(&client, "idx").await.is_empty()
    })
    .await;
}

/// The latest time at or before now whose minute (in `tz`) is `minute`.
fn latest_at_minute(tz: &jiff::tz::TimeZone, minute: i8) -> jiff::Zoned {
    let now = jiff::Timestamp::now().to_zoned(tz.clone());
    let t = now
        .with()
        .minute(minute)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap();
    if t > now {
        t.checked_sub(jiff::SignedDuration::from_hours(1)).unwrap()
    } else {
        t
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_runs_the_latest_missed_start_under_forbid_and_replace_and_prunes_history() {
    let (_ts, client) = start().await;
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    // A schedule 30 minutes away from now never fires on its own during the test; missed
    // starts are produced by moving lastScheduleTime back instead.
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let minute = (jiff::Timestamp::now().to_zoned(tz.clone()).minute() + 30) % 60;
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "cj", "namespace": NS},
        "spec": {"schedule": format!("{minute} * * * *"), "timeZone": "Asia/Kolkata",
            "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 2,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"from": "cj"}}, "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}
    }))
    .unwrap();
    let cj = cjs.create(&PostParams::default(), &cj).await.unwrap();
    let owner = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj",
        "uid": cj.metadata.uid.clone().unwrap(), "controller": true, "blockOwnerDeletion": true}]);
    // An earlier scheduled run that is still going (suspended, so it starts no pods)...
    let mut earlier = job("cj-1", json!({"suspend": true}));
    earlier.metadata.owner_references = serde_json::from_value(owner.clone()).unwrap();
    jobs.create(&PostParams::default(), &earlier).await.unwrap();
    // ...and finished runs: four complete, two failed, oldest first (they ran hours ago; the
    // history is ordered by start time, as upstream).
    for (i, (name, ty)) in [
        ("cj-h0", "Complete"),
        ("cj-h1", "Complete"),
        ("cj-h2", "Complete"),
        ("cj-h3", "Complete"),
        ("cj-f0", "Failed"),
        ("cj-f1", "Failed"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut j = job(name, json!({"suspend": true}));
        j.metadata.owner_references = serde_json::from_value(owner.clone()).unwrap();
        jobs.create(&PostParams::default(), &j).await.unwrap();
        let now = jiff::Timestamp::now().to_string();
        let started = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(10 - i as i64);
        jobs.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"startTime": started.to_string(), "conditions": [
                {"type": ty, "status": "True", "lastTransitionTime": now}]}}),
            ),
        )
        .await
        .unwrap();
    }
    // 200 missed hourly starts.
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(200);
    cjs.patch_status(
        "cj",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"lastScheduleTime": long_ago.to_string()}})),
    )
    .await
    .unwrap();
    let due = latest_at_minute(&tz, minute);
    let due_name = format!("cj-{}", due.timestamp().as_second() / 60);

    // Forbid: the earlier run is active, so nothing starts; history is pruned meanwhile.
    wait_for("Forbid to hold the start back", 15, || async {
        has_event(&client, "cj", "JobAlreadyActive", "Not starting job").await
    })
    .await;
    assert!(
        has_event(
            &client,
            "cj",
            "TooManyMissedTimes",
            "too many missed start times"
        )
        .await
    );
    wait_for("history to be pruned", 15, || async {
        let names: BTreeSet<String> = jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|j| j.name_any())
            .collect();
        names
            == ["cj-1", "cj-h2", "cj-h3", "cj-f1"]
                .map(String::from)
                .into_iter()
                .collect()
    })
    .await;
    assert!(has_event(&client, "cj", "SuccessfulDelete", "Deleted job cj-h0").await);
    let st = cjs.get("cj").await.unwrap().status.unwrap();
    let names: Vec<String> = st
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["cj-1"]);

    // Replace: the earlier run is deleted and the latest missed start runs.
    cjs.patch(
        "cj",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"concurrencyPolicy": "Replace"}})),
    )
    .await
    .unwrap();
    wait_for("the replacement job", 15, || async {
        jobs.get_opt(&due_name).await.unwrap().is_some()
            && jobs.get_opt("cj-1").await.unwrap().is_none()
    })
    .await;
    let j = jobs.get(&due_name).await.unwrap();
    let ann = j.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"].clone();
    assert_eq!(ann, due.strftime("%Y-%m-%dT%H:%M:%S+05:30").to_string());
    assert_eq!(j.labels()["from"], "cj");
    let r = &j.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((r.kind.as_str(), r.controller), ("CronJob", Some(true)));
    wait_for("status to show the new run", 10, || async {
        let st = cjs.get("cj").await.unwrap().status.unwrap_or_default();
        let names: Vec<String> = st
            .active
            .iter()
            .flatten()
            .filter_map(|r| r.name.clone())
            .collect();
        names == [due_name.clone()] && st.last_schedule_time.map(|t| t.0) == Some(due.timestamp())
    })
    .await;
    assert!(
        has_event(
            &client,
            "cj",
            "SuccessfulCreate",
            &format!("Created job {due_name}")
        )
        .await
    );
    assert!(has_event(&client, "cj", "SuccessfulDelete", "Deleted job cj-1").await);

    // The run completes: seen, recorded, and the oldest successful run beyond the limit goes.
    let running = wait_active(&client, &due_name, 1, 1).await;
    finish(&client, &running[0], "Succeeded").await;
    wait_for("the cronjob to see the completed run", 15, || async {
        let st = cjs.get("cj").await.unwrap().status.unwrap_or_default();
        st.active.is_none_or(|a| a.is_empty()) && st.last_successful_time.is_some()
    })
    .await;
    assert!(
        has_event(
            &client,
            "cj",
            "SawCompletedJob",
            &format!("Saw completed job: {due_name}, condition: Complete")
        )
        .await
    );
    wait_for("cj-h2 to be pruned", 15, || async {
        jobs.get_opt("cj-h2").await.unwrap().is_none()
    })
    .await;
    assert!(jobs.get_opt(&due_name).await.unwrap().is_some());
    assert!(jobs.get_opt("cj-h3").await.unwrap().is_some());
}
