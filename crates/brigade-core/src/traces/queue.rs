//! The export queue: finished spans wait in a bounded queue and one thread of its own sends
//! them in batches, so exporting never holds up a request (see the parent module).
//!
//! A span is queued without waking the thread: it wakes when a batch's worth is waiting (one
//! message on a separate control channel, sent by the span that fills the batch), when the
//! schedule delay has passed, or for a flush, a shutdown or a new resource. Waking it for every
//! span cost a futex wake and two context switches per span, which on a replica serving every
//! request traced was more than the span itself (docs/benchmarks.md, "Tracing, off and on").
//! The SDK's batch processor works the same way but keeps its drop count to itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::{SPANS_DROPPED, SPANS_EXPORTED, TraceExportError};

/// Room on the control channel: a wake-up, a flush, a shutdown or a resource at a time.
const CONTROL_ROOM: usize = 16;

/// Sizes of the export queue (the OpenTelemetry batch span processor's variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueueSettings {
    max_queue: usize,
    max_batch: usize,
    delay: Duration,
}

impl QueueSettings {
    pub(super) fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        let max_queue = usize::try_from(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)).unwrap_or(2048);
        let max_batch = usize::try_from(number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
            .unwrap_or(512)
            .min(max_queue);
        Self {
            max_queue,
            max_batch,
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 1000)),
        }
    }
}

/// What the export thread is asked to do.
enum Control {
    /// A batch's worth of spans is waiting.
    Export,
    Flush(mpsc::Sender<OTelSdkResult>),
    Shutdown(mpsc::Sender<OTelSdkResult>),
    Resource(Resource),
}

/// The count of queued spans and whether the thread was already woken for them, shared by the
/// processor (which adds) and the thread (which takes).
#[derive(Debug, Default)]
struct Backlog {
    queued: AtomicUsize,
    wake_sent: AtomicBool,
}

/// A batch span processor whose queue drops are counted.
#[derive(Debug)]
pub(super) struct QueueProcessor {
    queue: SpanQueue,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The sending side of the export queue: what the processor hands finished spans to, and what
/// spans brigade writes itself ([`super::server_span`]) are queued on.
#[derive(Debug, Clone)]
pub(super) struct SpanQueue {
    /// Finished spans; bounded, sent to without waiting and without waking the thread.
    spans: SyncSender<SpanData>,
    /// Wake-ups, flush, shutdown and resource changes.
    control: SyncSender<Control>,
    backlog: Arc<Backlog>,
    max_batch: usize,
}

impl SpanQueue {
    /// Queues a finished span without waiting; a full queue drops it and counts the drop.
    pub(super) fn push(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        // Counted before it is queued, so the thread never takes more than was counted.
        let queued = self.backlog.queued.fetch_add(1, Ordering::AcqRel) + 1;
        match self.spans.try_send(span) {
            Ok(()) if queued >= self.max_batch => self.wake_for_batch(),
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.backlog.queued.fetch_sub(1, Ordering::AcqRel);
                metrics::counter!(SPANS_DROPPED).increment(1);
            }
        }
    }

    /// Wakes the thread once for the batch that is waiting; a wake-up already sent and not
    /// yet taken covers it.
    fn wake_for_batch(&self) {
        if self.backlog.wake_sent.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.control.try_send(Control::Export).is_err() {
            // The channel is full of other messages, each of which drains the queue too.
            self.backlog.wake_sent.store(false, Ordering::Release);
        }
    }
}

impl QueueProcessor {
    pub(super) fn start<E: SpanExporter + 'static>(
        exporter: E,
        settings: QueueSettings,
    ) -> Result<Self, TraceExportError> {
        let (spans, queued_spans) = mpsc::sync_channel(settings.max_queue);
        let (control, controls) = mpsc::sync_channel(CONTROL_ROOM);
        let backlog = Arc::new(Backlog::default());
        let thread = Exporting {
            exporter,
            spans: queued_spans,
            backlog: Arc::clone(&backlog),
            max_batch: settings.max_batch,
        };
        let worker = std::thread::Builder::new()
            .name("trace-export".to_owned())
            .spawn(move || thread.run(&controls, settings.delay))
            .map_err(TraceExportError::Thread)?;
        Ok(Self {
            queue: SpanQueue {
                spans,
                control,
                backlog,
                max_batch: settings.max_batch,
            },
            worker: Mutex::new(Some(worker)),
        })
    }

    /// A handle for queuing spans beside the processor.
    pub(super) fn queue(&self) -> SpanQueue {
        self.queue.clone()
    }

    /// Sends a control message and waits for its answer, for at most `timeout` in all: a full
    /// channel or a collector that never answers must not hold a process that is exiting.
    fn ask(
        &self,
        message: impl FnOnce(mpsc::Sender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let (reply, answer) = mpsc::channel();
        let mut message = message(reply);
        loop {
            match self.queue.control.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    // The worker is sending a batch; it reads its messages again after.
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return Err(OTelSdkError::Timeout(timeout)),
                Err(TrySendError::Disconnected(_)) => return Err(OTelSdkError::AlreadyShutdown),
            }
        }
        answer
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.queue.push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, Duration::from_secs(30))
    }

    /// Sends what is queued and stops the worker, within `timeout`; past it the worker is
    /// left to the process's exit (its export may be waiting on a collector that is gone).
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.ask(Control::Shutdown, timeout);
        if result.is_ok()
            && let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take())
        {
            let _ = worker.join();
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.queue.control.send(Control::Resource(resource.clone()));
    }
}

/// The export thread's side: the queue it drains and where the spans go.
struct Exporting<E> {
    exporter: E,
    spans: Receiver<SpanData>,
    backlog: Arc<Backlog>,
    max_batch: usize,
}

impl<E: SpanExporter> Exporting<E> {
    /// Sleeps until woken or `delay` after the last send, then sends everything queued in
    /// batches of at most `max_batch`; answers flush and shutdown after sending.
    fn run(mut self, controls: &Receiver<Control>, delay: Duration) {
        let mut due = Instant::now() + delay;
        loop {
            match controls.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Control::Export) => {
                    self.backlog.wake_sent.store(false, Ordering::Release);
                    let _ = self.send_queued();
                    due = Instant::now() + delay;
                }
                Ok(Control::Flush(reply)) => {
                    let _ = reply.send(self.send_queued());
                }
                Ok(Control::Shutdown(reply)) => {
                    let _ = self.send_queued();
                    let _ = reply.send(self.exporter.shutdown());
                    return;
                }
                Ok(Control::Resource(resource)) => self.exporter.set_resource(&resource),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.send_queued();
                    due = Instant::now() + delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.send_queued();
                    let _ = self.exporter.shutdown();
                    return;
                }
            }
        }
    }

    /// Sends every span queued now, a batch at a time; the result of the last failed batch,
    /// if any.
    fn send_queued(&mut self) -> OTelSdkResult {
        let mut outcome = Ok(());
        loop {
            let mut batch = Vec::with_capacity(self.max_batch);
            while batch.len() < self.max_batch {
                match self.spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if batch.is_empty() {
                return outcome;
            }
            self.backlog.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            let full = batch.len() == self.max_batch;
            if let Err(error) = self.send(batch) {
                outcome = Err(error);
            }
            if !full {
                return outcome;
            }
        }
    }

    /// Exports `batch`, counting the outcome.
    fn send(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len() as u64;
        let result = futures_executor::block_on(self.exporter.export(batch));
        let outcome = if result.is_ok() { "success" } else { "failure" };
        metrics::counter!(SPANS_EXPORTED, "outcome" => outcome).increment(count);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    /// An exporter that hands each batch's size to the test.
    #[derive(Debug)]
    struct Batches(Mutex<mpsc::Sender<usize>>);

    impl SpanExporter for Batches {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let _ = self.0.lock().unwrap().send(batch.len());
            Ok(())
        }
    }

    fn span(n: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(n) + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn processor(settings: QueueSettings) -> (QueueProcessor, mpsc::Receiver<usize>) {
        let (sent, batches) = mpsc::channel();
        let processor = QueueProcessor::start(Batches(Mutex::new(sent)), settings).unwrap();
        (processor, batches)
    }

    /// Sends `spans` spans into a queue of batches of 4 with `delay`, and says how many went
    /// out in the first batch and how long after they were queued.
    fn first_batch(spans: u64, delay: Duration) -> (usize, Duration) {
        let (processor, batches) = processor(QueueSettings {
            max_queue: 64,
            max_batch: 4,
            delay,
        });
        let queued = Instant::now();
        for n in 0..spans {
            processor.on_end(span(n));
        }
        let size = batches.recv_timeout(Duration::from_secs(10)).unwrap();
        let after = queued.elapsed();
        processor
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap();
        (size, after)
    }

    #[test]
    fn a_full_batch_goes_out_at_once() {
        // The fourth span woke the thread; the minute's delay was not waited for.
        let (size, _) = first_batch(4, Duration::from_secs(60));
        assert_eq!(size, 4);
    }

    #[test]
    fn a_partial_batch_waits_for_the_delay() {
        let delay = Duration::from_millis(200);
        let (size, after) = first_batch(2, delay);
        assert_eq!(size, 2);
        assert!(after >= delay / 2, "{after:?}");
    }

    #[test]
    fn flush_and_shutdown_send_what_is_queued_and_a_full_queue_drops() {
        let (processor, batches) = processor(QueueSettings {
            max_queue: 8,
            max_batch: 8,
            delay: Duration::from_secs(60),
        });
        for n in 0..3 {
            processor.on_end(span(n));
        }
        processor.force_flush().unwrap();
        assert_eq!(
            batches.try_recv(),
            Ok(3),
            "flushed before force_flush returned"
        );

        // A thread that is not woken (a batch of 8 is sent at the 8th span, so hold the
        // thread's attention on nothing): 20 spans into a queue of 8 keep at most 8 + what
        // the wake-up sent meanwhile, and the rest are dropped rather than waited for.
        for n in 0..20 {
            processor.on_end(span(n));
        }
        processor
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap();
        let sent: usize = batches.try_iter().sum();
        assert!((8..20).contains(&sent), "{sent} of 20 spans sent");
        assert_eq!(processor.queue.backlog.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_unsampled_span_is_not_queued() {
        let (processor, batches) = processor(QueueSettings {
            max_queue: 8,
            max_batch: 1,
            delay: Duration::from_secs(60),
        });
        let mut unsampled = span(1);
        unsampled.span_context = SpanContext::new(
            TraceId::from(7_u128),
            SpanId::from(7_u64),
            TraceFlags::default(),
            false,
            TraceState::NONE,
        );
        processor.on_end(unsampled);
        processor.force_flush().unwrap();
        assert!(batches.try_recv().is_err());
    }
}
