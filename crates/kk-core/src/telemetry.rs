//! Logging: `tracing` to stderr, filtered by a level from the config or `RUST_LOG`.
//!
//! Two writers:
//! * [`init`]: each line is written to stderr when it is logged (the plugin and the charm's
//!   hook: short-lived commands whose every line must be out before they exit);
//! * [`init_non_blocking`]: the service's. A review's decision log line is appended to a
//!   bounded buffer (a copy under a lock: no allocation, no channel) and written by a thread
//!   of its own, so a review never waits on stderr (a pipe to journald, a full disk, a slow
//!   terminal). Lines written in a burst leave in one `write`. When the buffer is full, lines
//!   are dropped and counted ([`dropped_lines`], `k8s_keystone_auth_log_lines_dropped_total`),
//!   and the writer says how many it dropped; [`LogGuard::flush`] at shutdown writes every
//!   line logged before it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultVisitor, FormatFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;

/// Bytes of lines the non-blocking writer holds before it drops new ones (about 16,000
/// decision log lines).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The writer's output buffer, and the buffer of lines' first size.
const WRITE_BATCH: usize = 64 * 1024;

/// Most a buffer of lines keeps after a batch (a busy batch of [`BATCH_INTERVAL`]s at 60,000
/// lines a second is about 300 KiB).
const RETAINED: usize = 1024 * 1024;

/// After writing a batch of at least [`BUSY_BATCH`] lines (under load), the writer waits this
/// long before taking the next one, so such lines leave in a few large writes and do not wake
/// the writer each. A quiet service's lines are written at once.
const BATCH_INTERVAL: Duration = Duration::from_millis(20);

/// A batch this large means load: pause [`BATCH_INTERVAL`] after it.
const BUSY_BATCH: u64 = 64;

/// How long [`LogGuard::flush`] waits for the queue to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines dropped because the queue was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines the non-blocking writer dropped because stderr did not keep up (0 with [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Installs the global subscriber, writing each line at once. `level` is an `EnvFilter`
/// directive (`info`, `kk_webhook=debug,info`); `RUST_LOG`, when set, wins. Safe to call twice.
pub fn init(level: &str) {
    let _ = tracing_subscriber::fmt()
        .fmt_fields(Fields)
        .with_timer(Timestamp)
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(stderr_is_terminal())
        .try_init();
}

/// Installs the global subscriber with the non-blocking writer (see the module doc). Keep the
/// guard, and call [`LogGuard::flush`] before the process exits.
pub fn init_non_blocking(level: &str) -> LogGuard {
    let (writer, guard) = non_blocking(std::io::stderr(), QUEUE_BYTES);
    let _ = tracing_subscriber::fmt()
        .fmt_fields(Fields)
        .with_timer(Timestamp)
        .with_env_filter(filter(level))
        .with_writer(writer)
        .with_target(false)
        .with_ansi(stderr_is_terminal())
        .try_init();
    guard
}

/// tracing-subscriber's default timestamp (`2026-12-02T05:12:58.204140Z`, UTC, microseconds),
/// with the date and time of day formatted once per second and per thread.
pub struct Timestamp;

thread_local! {
    /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: std::cell::RefCell<(u64, String)> = const {
        std::cell::RefCell::new((u64::MAX, String::new()))
    };
}

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now();
        let since = match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) if d.as_secs() <= MAX_FAST_SECS => d,
            // Before 1970 or after 9999: the default formatter's signs and widths.
            _ => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
        };
        let secs = since.as_secs();
        SECOND.with(|cell| {
            let mut cached = cell.borrow_mut();
            if cached.0 != secs {
                cached.1 = date_time(secs);
                cached.0 = secs;
            }
            w.write_str(&cached.1)
        })?;
        let mut fraction = *b".000000Z";
        let mut micros = since.subsec_micros();
        for digit in fraction[1..7].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        // ASCII digits and punctuation.
        w.write_str(std::str::from_utf8(&fraction).unwrap_or(".000000Z"))
    }
}

/// 9999-12-31T23:59:59, the last second [`Timestamp`] formats itself.
const MAX_FAST_SECS: u64 = 253_402_300_799;

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of seconds since 1970 (the civil-from-days algorithm of
/// Howard Hinnant's "chrono-compatible low-level date algorithms").
fn date_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// tracing-subscriber's default field format, byte for byte, with its common cases written
/// directly: a plain ASCII string, a number or a bool as a field value (every decision log
/// line has several) skips `core::fmt` and the escaping checks. Everything else (messages,
/// `Debug` and `Display` values, errors, escaped strings, ANSI colours) goes to
/// [`DefaultVisitor`] itself; a test compares the two.
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = FieldVisitor {
            fast: !writer.has_ansi_escapes(),
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.finish()
    }
}

struct FieldVisitor<'w> {
    writer: Writer<'w>,
    /// No ANSI colours: the default visitor writes names and values with nothing around them.
    fast: bool,
    is_empty: bool,
    result: std::fmt::Result,
}

impl FieldVisitor<'_> {
    /// Whether `field` takes the direct path: a plain name (the default visitor treats
    /// `message`, `r#...` and `log.` names apart) and no colours.
    fn direct(&self, field: &tracing::field::Field) -> bool {
        let name = field.name();
        self.fast
            && self.result.is_ok()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// `name=` after the separating space, as the default visitor writes them.
    fn start(&mut self, field: &tracing::field::Field) -> std::fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }

    fn direct_display(&mut self, field: &tracing::field::Field, value: impl std::fmt::Display) {
        self.result = self
            .start(field)
            .and_then(|()| write!(self.writer, "{value}"));
    }

    /// `field` written by the default visitor itself; the next field then needs a space
    /// (except after `log.` fields, which it skips).
    fn delegate(
        &mut self,
        field: &tracing::field::Field,
        record: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    /// A number or bool: written directly, or by the default visitor.
    fn display_or_delegate(
        &mut self,
        field: &tracing::field::Field,
        value: impl std::fmt::Display,
        record: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.direct(field) {
            self.direct_display(field, value);
        } else {
            self.delegate(field, record);
        }
    }
}

/// Printable ASCII without `"` and `\\`: `str`'s `Debug` writes it between quotes unchanged.
fn plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if self.direct(field) && plain(value) {
            self.result = self.start(field).and_then(|()| {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            });
        } else {
            self.delegate(field, |v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.display_or_delegate(field, value, |v| v.record_u64(field, value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.display_or_delegate(field, value, |v| v.record_i64(field, value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.display_or_delegate(field, value, |v| v.record_bool(field, value));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // `Debug` of an f64 (`1.0`, not `1`), as the default visitor writes it.
        self.record_debug(field, &value);
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.delegate(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.direct(field) {
            self.result = self
                .start(field)
                .and_then(|()| write!(self.writer, "{value:?}"));
        } else {
            self.delegate(field, |v| v.record_debug(field, value));
        }
    }
}

impl VisitOutput<std::fmt::Result> for FieldVisitor<'_> {
    fn finish(self) -> std::fmt::Result {
        self.result
    }
}

/// The buffer the service's threads append lines to and the writer thread takes away.
struct Shared {
    buffer: Mutex<Buffer>,
    /// Wakes the writer: lines after a quiet spell, a flush, the guard's close.
    wake: Condvar,
    /// Wakes flushers once the writer has written what they wait for.
    written: Condvar,
    /// Lines this writer dropped (the process-wide count is [`dropped_lines`]).
    dropped: AtomicU64,
}

struct Buffer {
    /// Whole lines not yet taken by the writer, at most `capacity` bytes.
    bytes: Vec<u8>,
    capacity: usize,
    /// Lines appended since start, and of those, written out.
    appended: u64,
    written: u64,
    /// The writer waits for lines: the next line wakes it.
    writer_waiting: bool,
    flush_wanted: bool,
    /// The guard is gone (or the writer thread never started): lines are dropped.
    closed: bool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Buffer> {
    // A panic while holding the lock leaves whole lines behind: go on with them.
    shared.buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `MakeWriter` of the non-blocking writer: cheap to clone, one per subscriber.
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

/// Keeps the writer thread; [`LogGuard::flush`] waits until every line so far is written.
/// Dropping it flushes, then stops the writer.
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl LogGuard {
    /// Writes every line logged so far (waits at most 5 s, so a stuck stderr cannot hang
    /// shutdown). Returns whether the writer confirmed it.
    pub fn flush(&self) -> bool {
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        let mut buffer = lock(&self.shared);
        let target = buffer.appended;
        if buffer.written >= target {
            return true;
        }
        if buffer.closed {
            return false;
        }
        buffer.flush_wanted = true;
        self.shared.wake.notify_one();
        while buffer.written < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            buffer = match self.shared.written.wait_timeout(buffer, left) {
                Ok((b, _)) => b,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush();
        lock(&self.shared).closed = true;
        self.shared.wake.notify_one();
    }
}

/// A non-blocking writer to `out` holding at most `capacity` bytes of lines not yet written,
/// and its guard. The writing thread lives until the guard is dropped.
pub fn non_blocking<W: Write + Send + 'static>(out: W, capacity: usize) -> (NonBlocking, LogGuard) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer {
            bytes: Vec::with_capacity(capacity.min(WRITE_BATCH)),
            capacity,
            appended: 0,
            written: 0,
            writer_waiting: false,
            flush_wanted: false,
            closed: false,
        }),
        wake: Condvar::new(),
        written: Condvar::new(),
        dropped: AtomicU64::new(0),
    });
    let writer = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(out, &writer));
    if let Err(e) = spawned {
        // No thread: lines are dropped and counted rather than blocking reviews.
        let _ = writeln!(std::io::stderr(), "cannot start the log writer thread: {e}");
        lock(&shared).closed = true;
    }
    (
        NonBlocking {
            shared: shared.clone(),
        },
        LogGuard { shared },
    )
}

/// The writer thread: sleeps until a line comes, takes every line buffered (swapping in an
/// empty buffer), writes and flushes them, then, after a busy batch, waits [`BATCH_INTERVAL`]
/// (or less, for a flush) to let the next batch gather; reports dropped lines.
fn write_lines<W: Write>(out: W, shared: &Shared) {
    let mut out = std::io::BufWriter::with_capacity(WRITE_BATCH, out);
    let mut taken = Vec::with_capacity(WRITE_BATCH);
    let mut reported = 0;
    loop {
        let mut buffer = lock(shared);
        while buffer.bytes.is_empty() && !buffer.flush_wanted && !buffer.closed {
            buffer.writer_waiting = true;
            // Wake up now and then to report drops.
            buffer = match shared.wake.wait_timeout(buffer, Duration::from_secs(1)) {
                Ok((b, _)) => b,
                Err(poisoned) => poisoned.into_inner().0,
            };
            buffer.writer_waiting = false;
            if buffer.bytes.is_empty() {
                drop(buffer);
                report_drops(&mut out, &shared.dropped, &mut reported);
                let _ = out.flush();
                buffer = lock(shared);
            }
        }
        let closed = buffer.closed && buffer.bytes.is_empty();
        std::mem::swap(&mut buffer.bytes, &mut taken);
        let (done, upto) = (buffer.written, buffer.appended);
        let flushed = std::mem::take(&mut buffer.flush_wanted);
        drop(buffer);
        let _ = out.write_all(&taken);
        report_drops(&mut out, &shared.dropped, &mut reported);
        let _ = out.flush();
        let busy = upto - done >= BUSY_BATCH;
        taken.clear();
        // The two buffers take turns and keep their size, so steady load does not grow one
        // (a copy and page faults under the lock) at every batch; a burst's is given back.
        taken.shrink_to(RETAINED);
        let mut buffer = lock(shared);
        buffer.written = upto;
        shared.written.notify_all();
        if closed {
            return;
        }
        if busy && !flushed {
            let pause = std::time::Instant::now() + BATCH_INTERVAL;
            while !buffer.flush_wanted && !buffer.closed {
                let left = pause.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                buffer = match shared.wake.wait_timeout(buffer, left) {
                    Ok((b, _)) => b,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
    }
}

fn report_drops<W: Write>(out: &mut W, dropped: &AtomicU64, reported: &mut u64) {
    let dropped = dropped.load(Ordering::Relaxed);
    if dropped > *reported {
        let _ = writeln!(
            out,
            "{} log lines dropped: stderr did not keep up ({dropped} since start)",
            dropped - *reported
        );
        *reported = dropped;
    }
}

/// One formatted event, appended to the shared buffer in place (the buffer's lock is held
/// from [`MakeWriter::make_writer`] until the line is dropped, so a line written in several
/// parts stays whole); on drop, a line that does not fit is taken back out and counted.
pub struct Line<'a> {
    buffer: Option<MutexGuard<'a, Buffer>>,
    start: usize,
    shared: &'a Shared,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(buffer) = self.buffer.as_mut() {
            // At most one line past the capacity: taken back out on drop.
            if buffer.bytes.len() <= buffer.capacity {
                buffer.bytes.extend_from_slice(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        let Some(mut buffer) = self.buffer.take() else {
            return;
        };
        let len = buffer.bytes.len();
        if len == self.start {
            return;
        }
        if len > buffer.capacity || buffer.closed {
            buffer.bytes.truncate(self.start);
            drop(buffer);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.appended += 1;
        let wake = std::mem::take(&mut buffer.writer_waiting);
        drop(buffer);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        let buffer = lock(&self.shared);
        Line {
            start: buffer.bytes.len(),
            buffer: Some(buffer),
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what it gets, and can be made to block until released.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
        writes: Arc<AtomicU64>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn date_time_is_the_utc_calendar() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (951_868_799, "2000-02-29T23:59:59"),
            (1_798_847_999, "2027-01-01T23:59:59"),
            (1_798_848_000, "2027-01-02T00:00:00"),
            (4_102_444_800, "2100-01-01T00:00:00"),
            (MAX_FAST_SECS, "9999-12-31T23:59:59"),
        ] {
            assert_eq!(date_time(secs), text, "{secs}");
        }
    }

    /// [`Timestamp`] and the default timer write the same text (within the same second).
    #[test]
    fn timestamps_match_the_default_timer() {
        let format = |timer: &dyn FormatTime| {
            let mut text = String::new();
            timer.format_time(&mut Writer::new(&mut text)).unwrap();
            text
        };
        let mut same = 0;
        for _ in 0..50 {
            let ours = format(&Timestamp);
            let theirs = format(&tracing_subscriber::fmt::time::SystemTime);
            assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            // The same second (not at a boundary): the same date and time of day.
            if ours[..19] == theirs[..19] {
                same += 1;
            }
        }
        assert!(same >= 40, "{same} of 50");
    }

    /// The same events through the default field format and [`Fields`]: the same bytes.
    #[test]
    fn fields_write_what_the_default_format_writes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        fn events() {
            let e = Outer(std::io::Error::other("inner \"why\""));
            let err: &(dyn std::error::Error + 'static) = &e;
            tracing::info!(kind = "TokenReview", api_version = %"authentication.k8s.io/v1", user = "alice", result = "authenticated", reason = %"", latency_ms = 0.003, cache = "hit", "review");
            tracing::info!(
                user = "zoë \"q\" \\ \u{1b}[31m",
                n = 7u64,
                i = -3i64,
                b = true,
                f = 1.0,
                r#type = "x",
                "message \u{1b}[1m with {} args",
                2
            );
            tracing::warn!(error = err, count = 0, "failed");
            tracing::warn!(list = ?vec!["a", "b"], "");
            tracing::info!(only = "field");
            tracing::info!("message only");
        }
        let render = |fast: bool| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let out = buf.clone();
            let make = move || Capture(out.clone());
            let builder = tracing_subscriber::fmt()
                .with_writer(make)
                .with_ansi(false)
                .without_time()
                .with_target(false);
            if fast {
                tracing::subscriber::with_default(builder.fmt_fields(Fields).finish(), events);
            } else {
                tracing::subscriber::with_default(builder.finish(), events);
            }
            String::from_utf8(buf.lock().unwrap().clone()).unwrap()
        };
        let (default, fast) = (render(false), render(true));
        assert_eq!(default.lines().count(), 6, "{default}");
        assert!(default.contains("latency_ms=0.003"), "{default}");
        assert_eq!(fast, default);
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(writer: &NonBlocking, text: &str) {
        let mut line = writer.make_writer();
        line.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn flush_writes_every_queued_line_in_order() {
        let sink = Sink::default();
        let (writer, guard) = non_blocking(sink.clone(), 1024 * 1024);
        for i in 0..5_000 {
            log(&writer, &format!("line {i}\n"));
        }
        assert!(guard.flush());
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i}"))
        );
        // Batched: far fewer writes than lines.
        assert!(
            sink.writes.load(Ordering::Relaxed) < 1_000,
            "{sink:?}",
            sink = sink.writes
        );
    }

    /// Lines from several threads, each written in two parts: every line whole, each
    /// thread's in its order, none lost; the guard's drop stops the writer thread.
    #[test]
    fn lines_from_many_threads_stay_whole() {
        let sink = Sink::default();
        let (writer, guard) = non_blocking(sink.clone(), 1024 * 1024);
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = &writer;
                s.spawn(move || {
                    for i in 0..2_000 {
                        let mut line = writer.make_writer();
                        line.write_all(format!("thread {t} ").as_bytes()).unwrap();
                        line.write_all(format!("line {i}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert!(guard.flush());
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for l in text.lines() {
            let (t, i) = l
                .strip_prefix("thread ")
                .and_then(|l| l.split_once(" line "))
                .unwrap_or_else(|| panic!("not a whole line: {l:?}"));
            let t: usize = t.parse().unwrap();
            assert_eq!(i.parse::<usize>().unwrap(), next[t], "{l}");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        assert_eq!(writer.shared.dropped.load(Ordering::Relaxed), 0);
        drop(guard);
        // Closed: the writer thread has gone, and lines after it are dropped and counted.
        log(&writer, "late\n");
        assert_eq!(writer.shared.dropped.load(Ordering::Relaxed), 1);
        assert!(lock(&writer.shared).closed);
    }

    #[test]
    fn a_stuck_writer_drops_and_counts_lines_instead_of_blocking() {
        let sink = Sink::default();
        // Room for about 10 lines of 8 bytes.
        let (writer, guard) = non_blocking(sink.clone(), 80);
        let gate = sink.gate.lock().unwrap();
        let before = dropped_lines();
        assert_eq!(writer.shared.dropped.load(Ordering::Relaxed), 0);
        // The writer thread takes at most a buffer's worth out and blocks on the gate; the
        // buffer fills again; the rest must be dropped at once, not wait.
        let started = std::time::Instant::now();
        for i in 0..100 {
            log(&writer, &format!("line {i}\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        let dropped = writer.shared.dropped.load(Ordering::Relaxed);
        assert!((75..=100).contains(&dropped), "dropped {dropped}");
        assert!(dropped_lines() - before >= dropped);
        drop(gate);
        assert!(guard.flush());
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let kept = text.lines().filter(|l| l.starts_with("line ")).count() as u64;
        assert_eq!(kept + dropped, 100, "{text}");
        assert!(
            text.contains("log lines dropped: stderr did not keep up"),
            "{text}"
        );
    }
}
