//! `flagon-postgres`: Postgres as a Flagon DB adapter (`adapter = "postgres"`).
//!
//! One instance is one connection, spoken in Postgres's extended query protocol over the one
//! TCP socket the host lets it open (`wasi:sockets`, with every address but the configured
//! server's refused by the host). Statements are parsed once per connection as named
//! prepared statements and their parameters always bound, never interpolated: the text of a
//! statement and its values travel in different messages.
//!
//! Settings (the host builds them from `[databases.<name>]`):
//!
//! | setting | meaning |
//! |---|---|
//! | `address` | the server's socket addresses, resolved by the host, comma-separated |
//! | `host` | the server's name, for TLS (`server_name`) |
//! | `tls` | `verify` (TLS, the certificate checked against `ca_pem` or the Mozilla roots) or `off` |
//! | `ca_pem` | PEM certificates to trust instead of the Mozilla roots |
//! | `user`, `database`, `password` | the login (`password` from a secret variable) |
//! | `statement_timeout_ms` | the server-side deadline of each statement |
//! | `application_name` | shown in `pg_stat_activity` |
//!
//! Session settings are fixed at connect (`client_encoding` UTF8, `DateStyle` ISO, `TimeZone`
//! UTC, `statement_timeout`), so that `RESET ALL` in [`RESET`] restores them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{ErrorFields, Header, Message};
use postgres_protocol::message::frontend;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "flagon:app/sql-adapter",
    });
}

mod types;

use bindings::exports::flagon::app::sql_driver::{Guest, Limits};
use bindings::flagon::app::sql_types::{
    ConstraintKind, ConstraintViolation, Outcome, Rows, SqlError, Value,
};

struct Postgres;

/// Restores a connection's session to what `connect` made it: run before an instance serves
/// the next request. `DISCARD ALL` would also drop this adapter's prepared statements, so this
/// is the rest of what it does; statements a handler prepared itself are counted by the last
/// line and deallocated by [`Conn::reset`].
const RESET: &str = "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; \
     SELECT count(*) FROM pg_prepared_statements WHERE from_sql";

/// Prepared statements kept per connection; past it the oldest is closed.
const MAX_STATEMENTS: usize = 256;

/// Largest message read whole (other than a row, which the byte cap bounds).
const MAX_MESSAGE: usize = 1 << 20;

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

struct State {
    config: Config,
    /// `None` after the connection failed; the next call connects again.
    conn: Option<Conn>,
}

struct Config {
    addresses: Vec<SocketAddr>,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    user: String,
    database: String,
    password: Option<String>,
    statement_timeout_ms: u64,
    application_name: String,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A prepared statement of this connection.
#[derive(Clone)]
struct Prepared {
    name: String,
    /// (name, type oid) of each result column.
    columns: Arc<[(String, u32)]>,
    /// When it was last used, for eviction.
    used: u64,
}

struct Conn {
    stream: Stream,
    read: BytesMut,
    write: BytesMut,
    statements: HashMap<String, Prepared>,
    /// Names the next prepared statement.
    counter: u64,
    /// The last ReadyForQuery status: `I` idle, `T` in a transaction, `E` in a failed one.
    status: u8,
    /// The session is as `connect` left it (nothing run since the last reset).
    clean: bool,
}

/// Why an exchange failed.
enum Fail {
    /// The socket failed, or the server said something out of protocol: the connection is
    /// gone.
    Io(io::Error),
    /// The server refused the statement (the connection is fine).
    Sql(SqlError),
    /// The first thing the server said was that it had ended the connection (a restart, an
    /// admin command): it ended before reading what was just sent, so that did not run.
    Stale,
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

/// What one statement returned.
#[derive(Default)]
struct Exchange {
    columns: Option<Arc<[(String, u32)]>>,
    rows: Vec<Vec<Value>>,
    tag: String,
    /// The server stopped at our row cap (max_rows + 1): too many rows.
    too_many: bool,
    too_large: bool,
    error: Option<DbError>,
}

/// An ErrorResponse, as far as the adapter needs it.
struct DbError {
    code: String,
    severity: String,
    message: String,
    constraint: Option<String>,
}

fn parse_error(fields: ErrorFields<'_>) -> io::Result<DbError> {
    let mut e = DbError {
        code: String::new(),
        severity: String::new(),
        message: String::new(),
        constraint: None,
    };
    let mut fields = fields;
    while let Some(field) = fields.next()? {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => e.code = value,
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'M' => e.message = value,
            b'n' => e.constraint = Some(value),
            _ => {}
        }
    }
    Ok(e)
}

impl DbError {
    /// The server is going away (shutdown, crash, admin command) or the link failed.
    fn ends_connection(&self) -> bool {
        self.severity == "FATAL" || self.severity == "PANIC"
    }

    /// As the variant a handler matches. Messages are the server's own, with the SQLSTATE.
    fn to_sql_error(&self) -> SqlError {
        let message = format!("{} (SQLSTATE {})", self.message, self.code);
        let kind = match self.code.as_str() {
            "23505" => Some(
                if self
                    .constraint
                    .as_deref()
                    .is_some_and(|c| c.ends_with("_pkey"))
                {
                    ConstraintKind::PrimaryKey
                } else {
                    ConstraintKind::Unique
                },
            ),
            "23503" => Some(ConstraintKind::ForeignKey),
            "23502" => Some(ConstraintKind::NotNull),
            "23514" => Some(ConstraintKind::Check),
            c if c.starts_with("23") => Some(ConstraintKind::Other),
            _ => None,
        };
        if let Some(kind) = kind {
            return SqlError::ConstraintViolation(ConstraintViolation {
                kind,
                constraint: self.constraint.clone(),
                message,
            });
        }
        // `relation "todos" does not exist`, `column "titel" does not exist`
        let quoted = || {
            self.message
                .split('"')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| self.message.clone())
        };
        match self.code.as_str() {
            "42P01" => SqlError::NoSuchTable(quoted()),
            "42703" => SqlError::NoSuchColumn(quoted()),
            "42601" => SqlError::Syntax(if self.message.contains("multiple commands") {
                "one statement per call: stacked statements are refused".into()
            } else {
                message
            }),
            // statement_timeout, lock_timeout
            "57014" | "55P03" => SqlError::Timeout,
            _ if self.ends_connection() => SqlError::ConnectionLost,
            _ => SqlError::Other(message),
        }
    }
}

impl Conn {
    fn open(config: &Config) -> Result<Conn, SqlError> {
        Self::open_io(config).map_err(|e| match e {
            Fail::Sql(e) => e,
            Fail::Io(e) => SqlError::Other(format!("cannot connect to the server: {e}")),
            Fail::Stale => SqlError::Other("the server closed the connection".into()),
        })
    }

    fn open_io(config: &Config) -> Result<Conn, Fail> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for address in &config.addresses {
            match TcpStream::connect(address) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_nodelay(true)?;
        let stream = match &config.tls {
            None => Stream::Plain(tcp),
            Some((tls, name)) => {
                let mut tcp = tcp;
                let mut request = BytesMut::new();
                frontend::ssl_request(&mut request);
                tcp.write_all(&request)?;
                let mut answer = [0u8; 1];
                tcp.read_exact(&mut answer)?;
                if answer[0] != b'S' {
                    return Err(Fail::Sql(SqlError::Other(
                        "the server does not accept TLS (`tls = \"verify\"` needs `ssl = on` on \
                         the server)"
                            .into(),
                    )));
                }
                let client = rustls::ClientConnection::new(tls.clone(), name.clone())
                    .map_err(|e| Fail::Sql(SqlError::Other(format!("TLS: {e}"))))?;
                let mut tls = rustls::StreamOwned::new(client, tcp);
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock).map_err(|e| {
                        Fail::Sql(SqlError::Other(format!("TLS handshake failed: {e}")))
                    })?;
                }
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Conn {
            stream,
            read: BytesMut::with_capacity(8192),
            write: BytesMut::with_capacity(8192),
            statements: HashMap::new(),
            counter: 0,
            status: b'I',
            clean: true,
        };
        conn.startup(config)?;
        Ok(conn)
    }

    fn startup(&mut self, config: &Config) -> Result<(), Fail> {
        let timeout = config.statement_timeout_ms.to_string();
        let params = [
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
            ("TimeZone", "UTC"),
            ("statement_timeout", timeout.as_str()),
            ("application_name", config.application_name.as_str()),
        ];
        frontend::startup_message(params.iter().copied(), &mut self.write)?;
        self.flush()?;
        let password = || {
            config.password.as_deref().ok_or_else(|| {
                Fail::Sql(SqlError::Other(
                    "the server asks for a password: set `secrets = { password = \"...\" }`".into(),
                ))
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.message(None)? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write)?;
                    self.flush()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        config.user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                    self.flush()?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut supported = false;
                    while let Some(m) = mechanisms.next()? {
                        supported |= m == sasl::SCRAM_SHA_256;
                    }
                    if !supported {
                        return Err(Fail::Sql(SqlError::Other(
                            "the server offers no SASL mechanism this adapter knows \
                             (SCRAM-SHA-256)"
                                .into(),
                        )));
                    }
                    // Without channel binding (`n`): the TLS certificate is verified, which is what
                    // binding would add over plain SCRAM.
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        s.message(),
                        &mut self.write,
                    )?;
                    self.flush()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| out_of_protocol("SASL"))?;
                    s.update(body.data()).map_err(|e| auth_failed(&e))?;
                    frontend::sasl_response(s.message(), &mut self.write)?;
                    self.flush()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| out_of_protocol("SASL"))?;
                    s.finish(body.data()).map_err(|e| auth_failed(&e))?;
                }
                Message::ErrorResponse(body) => {
                    let e = parse_error(body.fields())?;
                    return Err(Fail::Sql(SqlError::Other(format!(
                        "the server refused the connection: {} (SQLSTATE {})",
                        e.message, e.code
                    ))));
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    return Ok(());
                }
                Message::BackendKeyData(_)
                | Message::ParameterStatus(_)
                | Message::NoticeResponse(_) => {}
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationSspi
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGssContinue(_) => {
                    return Err(Fail::Sql(SqlError::Other(
                        "the server asks for an authentication method this adapter does not \
                         speak (use scram-sha-256 or md5 in pg_hba.conf)"
                            .into(),
                    )));
                }
                _ => return Err(out_of_protocol("startup").into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.write)?;
        self.stream.flush()?;
        self.write.clear();
        Ok(())
    }

    /// Read until `n` bytes are buffered.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        while self.read.len() < n {
            let mut chunk = [0u8; 16384];
            let got = self.stream.read(&mut chunk)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.read.extend_from_slice(&chunk[..got]);
        }
        Ok(())
    }

    /// The next message. A data row longer than `row_budget` is read past (streamed, not
    /// buffered) and reported as `None`, so that no single row can exhaust the adapter's
    /// memory; any other message over [`MAX_MESSAGE`] breaks the connection.
    fn message_or_skip(&mut self, row_budget: Option<u64>) -> io::Result<Option<Message>> {
        self.fill(5)?;
        let header = Header::parse(&self.read)?.ok_or_else(|| out_of_protocol("header"))?;
        let len = header.len() as usize + 1;
        if header.tag() == b'D' && row_budget.is_some_and(|b| len as u64 > b + 64) {
            let mut left = len;
            while left > 0 {
                if self.read.is_empty() {
                    self.fill(1)?;
                }
                let take = left.min(self.read.len());
                let _ = self.read.split_to(take);
                left -= take;
            }
            return Ok(None);
        }
        if header.tag() != b'D' && len > MAX_MESSAGE {
            return Err(out_of_protocol("an oversized message"));
        }
        self.fill(len)?;
        Message::parse(&mut self.read)?
            .map_or_else(|| Err(out_of_protocol("message")), |m| Ok(Some(m)))
    }

    fn message(&mut self, row_budget: Option<u64>) -> io::Result<Message> {
        loop {
            if let Some(m) = self.message_or_skip(row_budget)? {
                return Ok(m);
            }
        }
    }

    /// Parse and describe a statement as a named prepared statement of this connection (one
    /// round trip, on its first use only), so that its result columns' types are known before
    /// it is bound: bytea comes back in binary, the rest as text.
    fn prepare(&mut self, sql: &str, tick: u64) -> Result<Prepared, Fail> {
        if self.statements.len() >= MAX_STATEMENTS
            && let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, p)| p.used)
                .map(|(k, _)| k.clone())
            && let Some(p) = self.statements.remove(&oldest)
        {
            frontend::close(b'S', &p.name, &mut self.write)?;
        }
        let name = format!("flagon_{tick}");
        frontend::parse(&name, sql, std::iter::empty(), &mut self.write)?;
        frontend::describe(b'S', &name, &mut self.write)?;
        frontend::sync(&mut self.write);
        self.flush()?;
        let mut columns = None;
        let mut error = None;
        let mut first = true;
        loop {
            let message = self.message(None)?;
            let was_first = std::mem::replace(&mut first, false);
            match message {
                Message::RowDescription(body) => {
                    let mut list = Vec::new();
                    let mut fields = body.fields();
                    while let Some(f) = fields.next()? {
                        list.push((f.name().to_string(), f.type_oid()));
                    }
                    columns = Some(list);
                }
                Message::NoData => columns = Some(Vec::new()),
                Message::ErrorResponse(body) => {
                    let e = parse_error(body.fields())?;
                    if e.ends_connection() {
                        return Err(if was_first { Fail::Stale } else { ended(&e) });
                    }
                    error.get_or_insert(e);
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    break;
                }
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(Fail::Sql(e.to_sql_error()));
        }
        let prepared = Prepared {
            name,
            columns: columns.unwrap_or_default().into(),
            used: tick,
        };
        self.statements.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    /// Run one statement through the extended protocol: Bind, Execute with a row cap, Sync,
    /// in one write (after [`Conn::prepare`] on first use). With `then_reset`, [`RESET`]
    /// follows in the same write, so that an autocommit statement costs one round trip,
    /// reset included.
    fn statement(
        &mut self,
        sql: &str,
        params: &[Value],
        limits: Limits,
        then_reset: bool,
    ) -> Result<Exchange, Fail> {
        refuse_nul(sql)?;
        self.counter += 1;
        let tick = self.counter;
        let cached = self.statements.get_mut(sql).map(|p| {
            p.used = tick;
            p.clone()
        });
        let was_cached = cached.is_some();
        let prepared = match cached {
            Some(p) => p,
            None => self.prepare(sql, tick)?,
        };
        let formats = params
            .iter()
            .map(|v| i16::from(matches!(v, Value::Blob(_))));
        let result_formats = prepared
            .columns
            .iter()
            .map(|(_, oid)| i16::from(*oid == types::BYTEA));
        let bound = frontend::bind(
            "",
            &prepared.name,
            formats,
            params,
            types::encode,
            result_formats,
            &mut self.write,
        );
        if let Err(e) = bound {
            self.write.clear();
            return Err(Fail::Sql(SqlError::Other(match e {
                frontend::BindError::Conversion(e) => e.to_string(),
                frontend::BindError::Serialization(e) => e.to_string(),
            })));
        }
        let cap = i32::try_from(limits.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
        frontend::execute("", cap, &mut self.write)?;
        frontend::sync(&mut self.write);
        if then_reset {
            frontend::query(RESET, &mut self.write)?;
        }
        self.flush()?;

        let columns = prepared.columns.clone();
        let mut out = Exchange {
            columns: Some(columns.clone()),
            ..Exchange::default()
        };
        let mut bytes: u64 = 0;
        let mut first = true;
        // Set once the server bound the portal: an error after it may come from a statement
        // that ran.
        let mut bound = false;
        loop {
            let budget = limits.max_bytes.saturating_sub(bytes);
            let Some(message) = self.message_or_skip(Some(budget))? else {
                out.too_large = true;
                continue;
            };
            let was_first = std::mem::replace(&mut first, false);
            match message {
                Message::BindComplete => bound = true,
                Message::DataRow(row) => {
                    if out.too_large || out.too_many {
                        continue;
                    }
                    if out.rows.len() as u64 >= limits.max_rows {
                        out.too_many = true;
                        continue;
                    }
                    let mut values = Vec::with_capacity(columns.len());
                    let mut ranges = row.ranges();
                    let mut i = 0;
                    while let Some(range) = ranges.next()? {
                        let oid = columns.get(i).map_or(0, |c| c.1);
                        i += 1;
                        let value = match range {
                            None => {
                                // Every value costs something, NULL included.
                                bytes += 8;
                                if bytes > limits.max_bytes {
                                    out.too_large = true;
                                    break;
                                }
                                Value::Null
                            }
                            Some(r) => {
                                bytes += (r.end - r.start).max(8) as u64;
                                if bytes > limits.max_bytes {
                                    out.too_large = true;
                                    break;
                                }
                                match types::decode(oid, &row.buffer()[r]) {
                                    Ok(v) => v,
                                    Err(e) => {
                                        out.error.get_or_insert(DbError {
                                            code: "22000".into(),
                                            severity: "ERROR".into(),
                                            message: e,
                                            constraint: None,
                                        });
                                        Value::Null
                                    }
                                }
                            }
                        };
                        values.push(value);
                    }
                    if !out.too_large {
                        out.rows.push(values);
                    }
                }
                Message::PortalSuspended => out.too_many = true,
                Message::CommandComplete(body) => out.tag = body.tag()?.to_string(),
                Message::ErrorResponse(body) => {
                    let e = parse_error(body.fields())?;
                    if e.ends_connection() {
                        return Err(if was_first { Fail::Stale } else { ended(&e) });
                    }
                    out.error.get_or_insert(e);
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    break;
                }
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                    // COPY needs a conversation this adapter does not offer; the server ends
                    // it when the Sync arrives.
                    out.error.get_or_insert(DbError {
                        code: "0A000".into(),
                        severity: "ERROR".into(),
                        message: "COPY is not supported".into(),
                        constraint: None,
                    });
                }
                // BindComplete, EmptyQueryResponse, notices, parameter changes, notifications
                _ => {}
            }
        }
        // The session may have changed; only a reset that fully succeeded makes it clean. A
        // pipelined reset that failed drops the connection: what the statement changed could
        // otherwise reach the next request.
        self.clean = false;
        if then_reset {
            self.clean = self.read_reset().map_err(|e| match e {
                Fail::Sql(_) => Fail::Io(io::Error::other("the session could not be reset")),
                other => other,
            })?;
        }
        if was_cached
            && !bound
            && let Some(e) = &out.error
            && matches!(e.code.as_str(), "26000" | "0A000")
            && self.status == b'I'
        {
            // A handler deallocated it, or a table changed under the cached plan: refused at
            // Bind (before any BindComplete), so nothing ran. Prepare it again.
            self.statements.remove(sql);
            return self.statement(sql, params, limits, then_reset);
        }
        Ok(out)
    }

    /// Read what [`RESET`] answers: true if the session is clean and idle, false if a
    /// handler's own prepared statements are left; an error if any line of it failed.
    fn read_reset(&mut self) -> Result<bool, Fail> {
        let mut failed = None;
        let mut prepared_by_sql: i64 = 0;
        loop {
            match self.message(None)? {
                Message::DataRow(row) => {
                    let mut ranges = row.ranges();
                    if let Some(Some(r)) = ranges.next()? {
                        prepared_by_sql = std::str::from_utf8(&row.buffer()[r])
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                    }
                }
                Message::ErrorResponse(body) => {
                    let e = parse_error(body.fields())?;
                    if e.ends_connection() {
                        return Err(Fail::Io(io::Error::other(e.message)));
                    }
                    failed.get_or_insert(e);
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    if let Some(e) = failed {
                        return Err(Fail::Sql(SqlError::Other(format!(
                            "the session could not be reset: {} (SQLSTATE {})",
                            e.message, e.code
                        ))));
                    }
                    return Ok(self.status == b'I' && prepared_by_sql == 0);
                }
                _ => {}
            }
        }
    }

    /// One simple-protocol command (no parameters): BEGIN, COMMIT, a migration script.
    /// Returns the last command tag.
    fn simple(&mut self, sql: &str) -> Result<String, Fail> {
        refuse_nul(sql)?;
        frontend::query(sql, &mut self.write)?;
        self.flush()?;
        let mut tag = String::new();
        let mut error = None;
        let mut first = true;
        loop {
            let message = self.message(None)?;
            let was_first = std::mem::replace(&mut first, false);
            match message {
                Message::CommandComplete(body) => tag = body.tag()?.to_string(),
                Message::ErrorResponse(body) => {
                    let e = parse_error(body.fields())?;
                    if e.ends_connection() {
                        return Err(if was_first { Fail::Stale } else { ended(&e) });
                    }
                    error.get_or_insert(e);
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    break;
                }
                _ => {}
            }
        }
        self.clean = false;
        match error {
            Some(e) => Err(Fail::Sql(e.to_sql_error())),
            None => Ok(tag),
        }
    }

    fn reset(&mut self) -> Result<(), Fail> {
        if self.clean && self.status == b'I' {
            return Ok(());
        }
        if self.status != b'I' {
            self.simple("ROLLBACK")?;
        }
        frontend::query(RESET, &mut self.write)?;
        self.flush()?;
        if !self.read_reset()? {
            if self.status != b'I' {
                return Err(Fail::Sql(SqlError::Other(
                    "the session could not be reset: still in a transaction".into(),
                )));
            }
            // Statements a handler prepared with SQL `PREPARE`: drop them all (ours too).
            self.simple("DEALLOCATE ALL")?;
            self.statements.clear();
        }
        self.clean = true;
        Ok(())
    }
}

/// The protocol's strings end at NUL, so a statement holding one cannot be sent (and would
/// otherwise fail as an I/O error, dropping the connection).
fn refuse_nul(sql: &str) -> Result<(), Fail> {
    if sql.contains('\0') {
        return Err(Fail::Sql(SqlError::Syntax(
            "a statement cannot hold a NUL character".into(),
        )));
    }
    Ok(())
}

/// The server ended the connection in the middle of an exchange.
fn ended(e: &DbError) -> Fail {
    Fail::Io(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("the server ended the connection: {}", e.message),
    ))
}

fn out_of_protocol(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent an unexpected {what}"),
    )
}

fn auth_failed(e: &io::Error) -> Fail {
    Fail::Sql(SqlError::Other(format!("authentication failed: {e}")))
}

impl State {
    /// Run `f` on the connection, connecting first if the last one failed. A connection that
    /// fails is dropped (the call returns `connection-lost`). If the server had already ended
    /// the connection before reading what `f` sent (a restart), `f` runs once more on a new
    /// connection, outside transactions only (inside one, the transaction is gone with it).
    fn with<T>(&mut self, mut f: impl FnMut(&mut Conn) -> Result<T, Fail>) -> Result<T, SqlError> {
        for attempt in 0..2 {
            let conn = match &mut self.conn {
                Some(conn) => conn,
                // Whatever stops a new connection now (the server down, or still starting
                // up), the database is unreachable for this call.
                None => match Conn::open_io(&self.config) {
                    Ok(conn) => self.conn.insert(conn),
                    Err(_) => return Err(SqlError::ConnectionLost),
                },
            };
            let in_transaction = conn.status != b'I';
            match f(conn) {
                Ok(t) => return Ok(t),
                Err(Fail::Sql(e)) => return Err(e),
                Err(Fail::Stale) if attempt == 0 && !in_transaction => self.conn = None,
                Err(Fail::Stale | Fail::Io(_)) => {
                    self.conn = None;
                    return Err(SqlError::ConnectionLost);
                }
            }
        }
        Err(SqlError::ConnectionLost)
    }
}

fn with_state<T>(f: impl FnOnce(&mut State) -> Result<T, SqlError>) -> Result<T, SqlError> {
    STATE.with_borrow_mut(|s| match s {
        Some(s) => f(s),
        None => Err(SqlError::Other("not connected".into())),
    })
}

fn run(statement: &str, params: &[Value], limits: Limits) -> Result<Exchange, SqlError> {
    let x = with_state(|s| {
        s.with(|c| {
            let autocommit = c.status == b'I';
            c.statement(statement, params, limits, autocommit)
        })
    })?;
    if let Some(e) = &x.error {
        return Err(e.to_sql_error());
    }
    if x.too_large {
        return Err(SqlError::TooLarge(limits.max_bytes));
    }
    if x.too_many {
        return Err(SqlError::TooManyRows(limits.max_rows));
    }
    Ok(x)
}

fn config(settings: &[(String, String)]) -> Result<Config, SqlError> {
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let required =
        |name: &str| setting(name).ok_or_else(|| SqlError::Other(format!("no `{name}` setting")));
    let addresses = required("address")?
        .split(',')
        .map(|a| {
            a.trim()
                .parse::<SocketAddr>()
                .map_err(|_| SqlError::Other(format!("`address`: `{a}` is not an address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tls = match setting("tls").unwrap_or("verify") {
        "off" => None,
        "verify" => {
            let mut roots = rustls::RootCertStore::empty();
            match setting("ca_pem") {
                Some(pem) => {
                    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                        let cert = cert.map_err(|e| SqlError::Other(format!("`ca_file`: {e}")))?;
                        roots
                            .add(cert)
                            .map_err(|e| SqlError::Other(format!("`ca_file`: {e}")))?;
                    }
                    if roots.is_empty() {
                        return Err(SqlError::Other("`ca_file` holds no certificate".into()));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| SqlError::Other(format!("TLS: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(required("host")?.to_string())
                .map_err(|e| SqlError::Other(format!("`host`: {e}")))?;
            Some((Arc::new(tls), name))
        }
        other => {
            return Err(SqlError::Other(format!(
                "`tls`: `{other}` is not `verify` or `off`"
            )));
        }
    };
    Ok(Config {
        addresses,
        tls,
        user: required("user")?.to_string(),
        database: setting("database")
            .or(setting("user"))
            .unwrap_or_default()
            .to_string(),
        password: setting("password").map(str::to_string),
        statement_timeout_ms: setting("statement_timeout_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        application_name: setting("application_name").unwrap_or("flagon").to_string(),
    })
}

impl Guest for Postgres {
    fn connect(settings: Vec<(String, String)>) -> Result<(), SqlError> {
        let config = config(&settings)?;
        let conn = Conn::open(&config)?;
        STATE.with_borrow_mut(|s| {
            *s = Some(State {
                config,
                conn: Some(conn),
            })
        });
        Ok(())
    }

    fn query(statement: String, params: Vec<Value>, limits: Limits) -> Result<Rows, SqlError> {
        let x = run(&statement, &params, limits)?;
        Ok(Rows {
            columns: x
                .columns
                .map(|c| c.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default(),
            rows: x.rows,
        })
    }

    fn execute(statement: String, params: Vec<Value>, limits: Limits) -> Result<Outcome, SqlError> {
        let x = run(&statement, &params, limits)?;
        Ok(Outcome {
            rows_affected: rows_affected(&x.tag),
            last_insert_id: None,
        })
    }

    fn begin() -> Result<(), SqlError> {
        with_state(|s| s.with(|c| c.simple("BEGIN"))).map(drop)
    }

    fn commit() -> Result<(), SqlError> {
        with_state(|s| {
            s.with(|c| {
                if c.status == b'E' {
                    c.simple("ROLLBACK")?;
                    return Err(Fail::Sql(rolled_back()));
                }
                match c.simple("COMMIT")?.as_str() {
                    "COMMIT" => Ok(()),
                    _ => Err(Fail::Sql(rolled_back())),
                }
            })
        })
    }

    fn rollback() -> Result<(), SqlError> {
        with_state(|s| s.with(|c| c.simple("ROLLBACK"))).map(drop)
    }

    fn run_script(script: String) -> Result<(), SqlError> {
        // Migrations get the host's migration deadline (10 minutes), not the per-statement
        // `statement_timeout` of requests; `SET LOCAL` ends with the migration's transaction.
        let script = format!("SET LOCAL statement_timeout = '10min';\n{script}");
        with_state(|s| s.with(|c| c.simple(&script))).map(drop)
    }

    fn reset() -> Result<(), SqlError> {
        with_state(|s| match s.conn.as_mut() {
            // Nothing to reset: the next call connects afresh.
            None => Ok(()),
            Some(c) => match c.reset() {
                Ok(()) => Ok(()),
                Err(Fail::Sql(e)) => Err(e),
                Err(Fail::Io(_) | Fail::Stale) => {
                    s.conn = None;
                    Err(SqlError::ConnectionLost)
                }
            },
        })
    }
}

fn rolled_back() -> SqlError {
    SqlError::Other(
        "the transaction was rolled back: a statement in it failed (SQLSTATE 25P02)".into(),
    )
}

/// Rows a command changed, from its tag (`INSERT 0 3`, `UPDATE 2`, `DELETE 1`, `SELECT 5`).
fn rows_affected(tag: &str) -> u64 {
    let mut words = tag.split(' ');
    match words.next() {
        Some("INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "COPY" | "FETCH" | "MOVE") => {
            words.next_back().and_then(|n| n.parse().ok()).unwrap_or(0)
        }
        _ => 0,
    }
}

bindings::export!(Postgres with_types_in bindings);
