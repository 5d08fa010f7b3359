//! Faults injected between a run's recorder and its store, through the store interface, on
//! both backends (issue 15): every write batch delivered twice (a retry after a commit whose
//! answer was lost), writes delayed, and the writes lost from some batch on (a connection that
//! died: that batch and all after it never committed, and the store says so at the next
//! flush). Each run's recorded results must be exactly what ran, once: the same node results
//! as a run without faults, and after lost writes, a recovery that reruns nothing recorded.

use crate::guests::{host, load, module};
use crate::pg_cluster::cluster;
use sandflow_contract::Value;
use sandflow_host::record::{module_record, Recorder};
use sandflow_host::scheduler::{Options, Recovered};
use sandflow_host::store::*;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every batch delivered twice.
    Duplicate,
    /// Every batch held back 0-2 ms (in order), as a slow network would.
    Delay,
    /// Batch `n` and every later one lost; the next flush fails.
    LoseFrom(u32),
}

/// A batch for the delaying thread, and where to say it was handed on (`None`: stop).
type Delayed = Option<(Vec<WriteOp>, mpsc::Sender<()>)>;

/// A store that passes everything to `inner`, with `fault` on the way.
struct Faulty {
    inner: Arc<AnyStore>,
    fault: Fault,
    batches: AtomicU32,
    lost: Mutex<bool>,
    delayed: Mutex<Option<mpsc::Sender<Delayed>>>,
}

impl Faulty {
    fn new(inner: Arc<AnyStore>, fault: Fault) -> Arc<Faulty> {
        let delayed = matches!(fault, Fault::Delay).then(|| {
            let (tx, rx) = mpsc::channel::<Delayed>();
            let store = inner.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                while let Ok(Some((ops, done))) = rx.recv() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    std::thread::sleep(Duration::from_micros(x % 2_000));
                    if !ops.is_empty() {
                        store.write_batch(ops);
                    }
                    let _ = done.send(());
                }
            });
            tx
        });
        Arc::new(Faulty {
            inner,
            fault,
            batches: AtomicU32::new(0),
            lost: Mutex::new(false),
            delayed: Mutex::new(delayed),
        })
    }
}

impl StoreWrite for Faulty {
    fn write(&self, op: WriteOp) {
        self.write_batch(vec![op]);
    }
    fn write_batch(&self, ops: Vec<WriteOp>) {
        let n = self.batches.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::Duplicate => {
                self.inner.write_batch(ops.clone());
                self.inner.write_batch(ops);
            }
            Fault::Delay => {
                let (done, _) = mpsc::channel();
                if let Some(tx) = &*self.delayed.lock().unwrap() {
                    let _ = tx.send(Some((ops, done)));
                }
            }
            Fault::LoseFrom(k) if n >= k => *self.lost.lock().unwrap() = true,
            Fault::LoseFrom(_) => self.inner.write_batch(ops),
        }
    }
    fn flush(&self) -> Result<(), StoreError> {
        if let Some(tx) = &*self.delayed.lock().unwrap() {
            // Everything sent before is handed on first.
            let (done, wait) = mpsc::channel();
            let _ = tx.send(Some((Vec::new(), done)));
            let _ = wait.recv();
        }
        self.inner.flush()?;
        if *self.lost.lock().unwrap() {
            return Err(StoreError::Postgres {
                location: self.inner.location(),
                context: "writing".into(),
                message: "the connection was lost (an injected fault)".into(),
            });
        }
        Ok(())
    }
    fn mark_interrupted_if_dead(&self) -> Result<Vec<ExecutionId>, StoreError> {
        self.inner.mark_interrupted_if_dead()
    }
    fn request_cancel(&self, id: &ExecutionId) -> Result<(), StoreError> {
        self.inner.request_cancel(id)
    }
    fn cache_clear(&self, task: Option<&str>) -> Result<u64, StoreError> {
        self.inner.cache_clear(task)
    }
    fn prune(&self, older_than: Duration) -> Result<PruneReport, StoreError> {
        self.inner.prune(older_than)
    }
}

impl StoreRead for Faulty {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn executions(&self, f: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.inner.executions(f)
    }
    fn execution(&self, id: &str) -> Result<Execution, StoreError> {
        self.inner.execution(id)
    }
    fn nodes(&self, id: &ExecutionId) -> Result<Vec<NodeInfo>, StoreError> {
        self.inner.nodes(id)
    }
    fn children(&self, id: &ExecutionId) -> Result<Vec<ExecutionSummary>, StoreError> {
        self.inner.children(id)
    }
    fn logs(&self, id: &ExecutionId, p: Option<&str>) -> Result<Vec<AttemptLog>, StoreError> {
        self.inner.logs(id, p)
    }
    fn module(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.module(digest)
    }
    fn entities(&self, digest: &str) -> Result<Vec<EntityRecord>, StoreError> {
        self.inner.entities(digest)
    }
    fn succeeded_outputs(
        &self,
        id: &ExecutionId,
    ) -> Result<HashMap<u64, Option<Value>>, StoreError> {
        self.inner.succeeded_outputs(id)
    }
    fn graphs(&self, id: &ExecutionId) -> Result<Graphs, StoreError> {
        self.inner.graphs(id)
    }
    fn events(&self, id: &ExecutionId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.events(id)
    }
    fn cache_get(&self, key: &[u8]) -> Result<Option<CacheEntry>, StoreError> {
        self.inner.cache_get(key)
    }
    fn cache_list(&self, task: Option<&str>) -> Result<Vec<CacheEntry>, StoreError> {
        self.inner.cache_list(task)
    }
    fn cancel_requested(&self, id: &ExecutionId) -> Result<bool, StoreError> {
        self.inner.cancel_requested(id)
    }
    fn modules(&self) -> Result<Vec<ModuleSummary>, StoreError> {
        self.inner.modules()
    }
}

const N: i64 = 300;

/// Runs the seed's nested program over 0..N (chunk 10) recording into `store`, recovering
/// `recovered` if given; the execution, the output, and how recording it ended.
fn run_seed(
    store: Arc<dyn Store>,
    recovered: Option<(ExecutionId, Recovered)>,
) -> (ExecutionId, Option<Value>, Result<(), StoreError>) {
    let sandbox = load("nested_dynamics");
    let bytes = std::fs::read(module("nested_dynamics")).expect("the module");
    let inputs = vec![
        Value::List((0..N).map(Value::Int).collect()),
        Value::Int(10),
    ];
    let (from, rec) = match recovered {
        Some((id, r)) => (Some(id), Some(Arc::new(r))),
        None => (None, None),
    };
    let mut recorder = Recorder::start(
        store,
        module_record(&bytes, &sandbox.decl),
        "multi_wf",
        &inputs,
        from,
    );
    let opts = Options {
        recovered: rec,
        ..Options::default()
    };
    let report = host()
        .run_observed(&sandbox, "multi_wf", inputs, opts, None, &mut recorder)
        .expect("the run starts");
    let out = report.result.expect("the run succeeds");
    (recorder.execution().clone(), out, recorder.close())
}

fn expected() -> Value {
    Value::List((0..N).map(|a| Value::Int(a + 3)).collect())
}

/// Every node of the tree of `id` (its own and its child executions'), by key: path,
/// status, attempts, output. Panics if a key is read twice (recorded twice).
fn tree(store: &AnyStore, id: &ExecutionId) -> HashMap<u64, (String, String, u32, Option<Value>)> {
    let mut all = HashMap::new();
    let mut todo = vec![id.clone()];
    while let Some(x) = todo.pop() {
        todo.extend(store.children(&x).unwrap().into_iter().map(|c| c.id));
        for n in store.nodes(&x).unwrap() {
            let row = (
                n.path.clone(),
                n.status.as_str().to_string(),
                n.attempts,
                n.output,
            );
            assert!(
                all.insert(n.key, row).is_none(),
                "node {} of {x} read twice",
                n.path
            );
        }
    }
    all
}

/// The stores each fault is tried on: a fresh SQLite file and a fresh PostgreSQL database.
fn stores(name: &str) -> Vec<(String, Arc<AnyStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join(format!("{name}.db"));
    let sqlite = AnyStore::open(&file).expect("SQLite opens");
    let url = cluster().database(name);
    let pg = AnyStore::open(std::path::Path::new(&url)).expect("PostgreSQL opens");
    vec![
        ("sqlite".into(), Arc::new(sqlite), dir),
        (
            "postgres".into(),
            Arc::new(pg),
            tempfile::tempdir().unwrap(),
        ),
    ]
}

/// What a run without faults records, by path: status, attempts, output.
fn clean(store: &AnyStore, id: &ExecutionId) -> Vec<(String, String, u32, Option<Value>)> {
    let mut v: Vec<_> = tree(store, id).into_values().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn duplicated_and_delayed_writes_record_each_result_once() {
    for (kind, store, _dir) in stores("faults_dup") {
        let (base, out, rec) = run_seed(store.clone(), None);
        assert_eq!(out, Some(expected()));
        rec.unwrap_or_else(|e| panic!("{kind}: {e}"));
        let want = clean(&store, &base);
        assert_eq!(
            want.iter().filter(|n| n.1 == "succeeded").count(),
            want.len()
        );
        for fault in [Fault::Duplicate, Fault::Delay] {
            let faulty = Faulty::new(store.clone(), fault);
            let (id, out, rec) = run_seed(faulty, None);
            assert_eq!(out, Some(expected()), "{kind} {fault:?}");
            rec.unwrap_or_else(|e| panic!("{kind} {fault:?}: recording failed: {e}"));
            assert_eq!(clean(&store, &id), want, "{kind} {fault:?}");
            let e = store.execution(id.as_str()).unwrap().summary;
            assert_eq!(e.status.as_str(), "succeeded", "{kind} {fault:?}");
        }
    }
}

#[test]
fn writes_lost_from_any_batch_on_are_an_error_and_the_recovery_reruns_nothing_recorded() {
    for (kind, store, _dir) in stores("faults_lost") {
        // How many batches a run writes, then where the writes stop: right after the start,
        // a little later, and a quarter in (a run's batches are its driver's steps, which
        // vary from run to run: a later point could be past the end of the next run).
        let counting = Faulty::new(store.clone(), Fault::LoseFrom(u32::MAX));
        run_seed(counting.clone(), None).2.expect("nothing lost");
        let total = counting.batches.load(Ordering::SeqCst);
        assert!(total >= 4, "{kind}: {total} batches");
        for k in [1, 2, (total / 4).max(3)] {
            let faulty = Faulty::new(store.clone(), Fault::LoseFrom(k));
            let (id, out, rec) = run_seed(faulty, None);
            assert_eq!(out, Some(expected()), "the run itself is right");
            let err = rec
                .expect_err("lost writes are an error at the flush")
                .to_string();
            assert!(err.contains("connection was lost"), "{kind} {k}: {err}");
            let before: HashSet<u64> = tree(&store, &id)
                .into_iter()
                .filter(|(_, n)| n.1 == "succeeded" && n.2 > 0)
                .map(|(k, _)| k)
                .collect();
            let recovered = store.recovered(&id).unwrap();
            let (again, out, rec) = run_seed(store.clone(), Some((id.clone(), recovered)));
            assert_eq!(out, Some(expected()), "{kind} {k}");
            rec.unwrap_or_else(|e| panic!("{kind} {k}: {e}"));
            let after = tree(&store, &again);
            let reran: Vec<&String> = after
                .iter()
                .filter(|(key, n)| n.2 > 0 && before.contains(key))
                .map(|(_, n)| &n.0)
                .collect();
            assert!(
                reran.is_empty(),
                "{kind} {k}: recorded, and ran again: {reran:?}"
            );
            assert_eq!(
                store
                    .execution(again.as_str())
                    .unwrap()
                    .summary
                    .status
                    .as_str(),
                "succeeded"
            );
        }
    }
}
