//! Defaulted objects compared with `kubectl get -o yaml` of the same manifests on a real
//! cluster (v1.33).

use super::*;

#[test]
fn minimal_deployment_gets_upstream_defaults() {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}]}]}}}});
    apply("apps", "v1", "Deployment", &mut d);
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    // Templates do not get admission-time pod fields.
    assert!(pod.get("enableServiceLinks").is_none());
    assert!(pod.get("tolerations").is_none());
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
    assert_eq!(c["ports"][0]["protocol"], "TCP");
}

#[test]
fn defaults_never_override_user_values() {
    let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"},
        "template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}}}});
    apply("apps", "v1", "Deployment", &mut d);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Never"
    );
}

#[test]
fn image_pull_policy_follows_the_tag() {
    assert_eq!(image_pull_policy("nginx"), "Always");
    assert_eq!(image_pull_policy("nginx:latest"), "Always");
    assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
    assert_eq!(image_pull_policy("localhost:5000/app"), "Always");
    assert_eq!(image_pull_policy("localhost:5000/app:v2"), "IfNotPresent");
    assert_eq!(image_pull_policy("busybox@sha256:abcd"), "IfNotPresent");
}

#[test]
fn bare_pod_gets_admission_fields_and_qos() {
    let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox",
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
        "livenessProbe": {"httpGet": {"port": 8080}},
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
        "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]}});
    apply("", "v1", "Pod", &mut p);
    let spec = &p["spec"];
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
    assert_eq!(spec["tolerations"][0]["tolerationSeconds"], 300);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "100m", "memory": "64Mi"})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
            "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
}

#[test]
fn service_namespace_job_and_cronjob_defaults() {
    let mut s = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    apply("", "v1", "Service", &mut s);
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["sessionAffinity"], "None");
    assert_eq!(
        s["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
    assert!(s["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(s["status"], json!({"loadBalancer": {}}));

    let mut ns = json!({"metadata": {"name": "team-a"}});
    apply("", "v1", "Namespace", &mut ns);
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );

    let mut job = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}});
    apply("batch", "v1", "Job", &mut job);
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completionMode"], "NonIndexed");
    assert_eq!(job["spec"]["suspend"], false);
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}});
    apply("batch", "v1", "CronJob", &mut cj);
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
    assert!(
        cj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none()
    );

    let mut widget = json!({"spec": {}});
    apply("example.com", "v1", "Widget", &mut widget);
    assert_eq!(widget, json!({"spec": {}}));
}
