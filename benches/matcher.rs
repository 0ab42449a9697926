//! Matcher speed: typical messages, pasted logs of 1, 10 and 40 KB, abstentions, and loading the
//! knowledge base. `cargo bench --bench matcher`; figures are recorded in README.md / BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use netrunbook::kb::KnowledgeBase;

const TYPICAL: &[&str] = &[
    "customer's LoadBalancer service never gets an external IP on VPC",
    "<@U0123ABCD> kcc crashlooping on prod-tok02 :fire:",
    "pods can't resolve hostnames since this morning",
    "[#4821337] armada-network-konnectivityserver triggered for c9v3k1sd0abcdefgh123",
    "new VPC workers stuck in provisioning, Pending endpoint gateway creation for 25 min",
    "calcio-node restarting on one worker, restart count 212",
];

const ABSTAIN: &[&str] = &[
    "hello!",
    "how do I resize a PVC?",
    "who approves IAM access group invites?",
];

/// A pasted log of about `bytes` bytes: noisy kubectl/calico lines with one telling error at the end.
fn paste(bytes: usize) -> String {
    let line = "2024-03-01T10:22:31.123Z [INFO][72] felix/int_dataplane.go 1234: Applying dataplane updates ipsetsToUpdate=3 pod=web-6c9f8d7b5-x2kq9 ip=172.30.14.9 node=10.242.64.17 uid=3f2a9c1e-1111-2222-3333-444455556666\n";
    let mut s = String::new();
    while s.len() + line.len() < bytes.saturating_sub(200) {
        s.push_str(line);
    }
    s.push_str("Warning FailedCreatePodSandBox kubelet: failed to request 1 IPv4 addresses. IPAM allocated only 0\n");
    s
}

/// Per-message latency percentiles, which criterion's mean does not show: each input matched `n` times.
fn percentiles(kb: &KnowledgeBase, name: &str, inputs: &[String], n: usize) {
    let mut times: Vec<std::time::Duration> = Vec::with_capacity(n * inputs.len());
    for _ in 0..n {
        for t in inputs {
            let start = std::time::Instant::now();
            black_box(kb.match_text(black_box(t)));
            times.push(start.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<20} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({} runs)",
        at(0.5),
        at(0.99),
        times[times.len() - 1],
        times.len()
    );
}

fn bench(c: &mut Criterion) {
    let kb = KnowledgeBase::builtin().unwrap();
    // the learned layer is fit in the background: the timed matches start once it is ready
    kb.matcher.wait_learned();
    let typical: Vec<String> = TYPICAL.iter().map(|s| s.to_string()).collect();
    let abstain: Vec<String> = ABSTAIN.iter().map(|s| s.to_string()).collect();
    percentiles(&kb, "typical", &typical, 2000);
    percentiles(&kb, "abstain", &abstain, 2000);
    for size in [1024, 10 * 1024, 40 * 1024] {
        percentiles(&kb, &format!("paste {}KB", size / 1024), &[paste(size)], 300);
    }
    // the slow path the fuzzing found: non-ASCII text keeps the signature regexes off their fast engine
    let non_ascii = "ошибка DNS: не удаётся разрешить имя сервиса, ÄÖÜ ßé ünïcødé 🔥\n".repeat(40 * 1024 / 90);
    percentiles(&kb, "paste 40KB non-ASCII", &[non_ascii], 100);
    let mut loads: Vec<std::time::Duration> = (0..30)
        .map(|_| {
            let start = std::time::Instant::now();
            let kb = black_box(KnowledgeBase::builtin().unwrap());
            let took = start.elapsed();
            // let its learned layer finish before the next load, so runs do not compete for the cores
            black_box(kb.match_text("x"));
            took
        })
        .collect();
    loads.sort();
    println!(
        "load kb              p50 {:>9.1?}  max {:>9.1?}  (30 runs)",
        loads[15], loads[29]
    );
    // the learned layer is fit in the background: the first match after a load waits for it
    let mut ready: Vec<std::time::Duration> = (0..30)
        .map(|_| {
            let start = std::time::Instant::now();
            let kb = KnowledgeBase::builtin().unwrap();
            black_box(kb.match_text("calico-node CrashLoopBackOff"));
            start.elapsed()
        })
        .collect();
    ready.sort();
    println!(
        "load + first match   p50 {:>9.1?}  max {:>9.1?}  (30 runs)",
        ready[15], ready[29]
    );
    let mut g = c.benchmark_group("match");
    g.bench_function("typical", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % TYPICAL.len();
            black_box(kb.match_text(black_box(TYPICAL[i])))
        })
    });
    g.bench_function("abstain", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ABSTAIN.len();
            black_box(kb.match_text(black_box(ABSTAIN[i])))
        })
    });
    for kb_size in [1024, 10 * 1024, 40 * 1024] {
        let text = paste(kb_size);
        g.bench_with_input(
            BenchmarkId::new("paste", format!("{}KB", kb_size / 1024)),
            &text,
            |b, t| b.iter(|| black_box(kb.match_text(black_box(t)))),
        );
    }
    g.finish();
    c.bench_function("load_builtin_kb", |b| {
        b.iter(|| black_box(KnowledgeBase::builtin().unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
