//! An SMTP sink: a server on a free loopback port that accepts every message and keeps it in
//! memory, so that a test can read the e-mails Keycloak sends (the "execute actions"
//! invitations) without a real mail server.
//!
//! Keycloak's realm points at it with `host=127.0.0.1`, its port, and no SSL, STARTTLS or
//! authentication; the sink therefore speaks plain RFC 5321 only, and advertises neither
//! STARTTLS nor AUTH, so that no client tries them. Every recipient is accepted: the sink
//! delivers nowhere, a test asks it what was addressed to whom.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::{AbortHandle, JoinSet};

/// What EHLO answers: the sink's name, then its extensions. 8BITMIME lets a client send
/// UTF-8 bodies as they are; the sink keeps them as they are anyway.
const EHLO: &str = "250-127.0.0.1 platform-mesh test SMTP sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";

/// A running SMTP sink; stops (its listener and every open connection) when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    messages: Arc<Mutex<Vec<Message>>>,
    listener: AbortHandle,
}

/// A message the sink received: its envelope and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for the null sender.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets, in the order given.
    pub to: Vec<String>,
    /// The content as sent after `DATA`, headers and body, with dot-stuffing undone and
    /// every line ending normalised to `\n` (clients send CRLF; a test compares text).
    pub data: String,
}

impl SmtpSink {
    /// A sink on a free port of 127.0.0.1, serving connections until it is dropped. Panics
    /// when it cannot listen.
    pub async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the SMTP sink to 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the SMTP sink's address: {e}"))
            .port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let received = messages.clone();
        let task = tokio::spawn(async move {
            // The connections live in this task's set, so that aborting the task (when the
            // sink is dropped) aborts them too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve(stream, received.clone()));
                        }
                        // Out of file descriptors, say: wait instead of spinning on the error.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    // Reaps finished connections, which the set would otherwise keep.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        SmtpSink {
            port,
            messages,
            listener: task.abort_handle(),
        }
    }

    /// The port it listens on, of 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.messages).clone()
    }

    /// The first message addressed to `to` (compared without regard to case), polling every
    /// 100 ms; panics after `within`, listing what was received, so that a test shows where
    /// the mail went if not to `to`.
    pub async fn wait_for(&self, to: &str, within: Duration) -> Message {
        let deadline = Instant::now() + within;
        loop {
            let found = lock(&self.messages)
                .iter()
                .find(|m| m.to.iter().any(|r| r.eq_ignore_ascii_case(to)))
                .cloned();
            if let Some(message) = found {
                return message;
            }
            if Instant::now() >= deadline {
                let received: Vec<String> = self
                    .messages()
                    .iter()
                    .map(|m| {
                        format!(
                            "  from {:?} to {:?}: {:?}",
                            m.from,
                            m.to,
                            m.header("Subject").unwrap_or_default()
                        )
                    })
                    .collect();
                panic!(
                    "no e-mail to {to} within {within:?}; the SMTP sink received {}:\n{}",
                    received.len(),
                    received.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// The messages, also after a test panicked while holding the lock (a `Vec` push cannot leave
/// it half-done).
fn lock(messages: &Mutex<Vec<Message>>) -> std::sync::MutexGuard<'_, Vec<Message>> {
    messages.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One SMTP session; any I/O error ends it (the client sees the connection closed).
async fn serve(stream: TcpStream, messages: Arc<Mutex<Vec<Message>>>) {
    let _ = session(stream, &messages).await;
}

async fn session(stream: TcpStream, messages: &Mutex<Vec<Message>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 127.0.0.1 platform-mesh test SMTP sink ready\r\n")
        .await?;
    // The envelope of the message in progress: after MAIL, and after each RCPT.
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut lines).await? {
        let (verb, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let reply: &str = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                (from, to) = (None, Vec::new());
                EHLO
            }
            "HELO" => {
                (from, to) = (None, Vec::new());
                "250 127.0.0.1\r\n"
            }
            "MAIL" => match strip_prefix_ignoring_case(rest.trim_start(), "FROM:").map(path) {
                _ if from.is_some() => "503 5.5.1 a MAIL is already in progress\r\n",
                Some(Some(sender)) => {
                    from = Some(sender);
                    "250 2.1.0 OK\r\n"
                }
                _ => "501 5.5.4 expected MAIL FROM:<address>\r\n",
            },
            "RCPT" => match strip_prefix_ignoring_case(rest.trim_start(), "TO:").map(path) {
                _ if from.is_none() => "503 5.5.1 MAIL first\r\n",
                Some(Some(recipient)) if !recipient.is_empty() => {
                    to.push(recipient);
                    "250 2.1.5 OK\r\n"
                }
                _ => "501 5.5.4 expected RCPT TO:<address>\r\n",
            },
            "DATA" => match from.take() {
                Some(sender) if !to.is_empty() => {
                    write
                        .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let Some(data) = read_data(&mut lines).await? else {
                        return Ok(()); // closed before the end of the data
                    };
                    // Stored before the reply: once a client has its 250, the message is there.
                    lock(messages).push(Message {
                        from: sender,
                        to: std::mem::take(&mut to),
                        data,
                    });
                    "250 2.0.0 OK: queued\r\n"
                }
                sender => {
                    from = sender;
                    "503 5.5.1 MAIL and RCPT first\r\n"
                }
            },
            "RSET" => {
                (from, to) = (None, Vec::new());
                "250 2.0.0 OK\r\n"
            }
            "NOOP" => "250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return write.shutdown().await;
            }
            _ => "502 5.5.2 command not implemented\r\n",
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// The next line without its ending (CRLF, or a bare LF from a lax client); `None` at the end
/// of the stream. Bytes that are not UTF-8 are replaced, not refused: a test reads text.
async fn read_line(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    if lines.read_until(b'\n', &mut bytes).await? == 0 {
        return Ok(None);
    }
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(String::from_utf8_lossy(line).into_owned()))
}

/// The content after `DATA` up to the line that is a single `.`, each line ending in `\n`,
/// with the dot-stuffing undone (RFC 5321 §4.5.2: a line's leading `.` was added by the
/// client); `None` when the stream ends first.
async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    while let Some(line) = read_line(lines).await? {
        if line == "." {
            return Ok(Some(data));
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
        data.push('\n');
    }
    Ok(None)
}

/// The address of `<address>` (with any parameters after it, such as `BODY=8BITMIME`, left
/// out), or of a bare `address` as lax clients send it; `None` when a `<` is not closed.
fn path(argument: &str) -> Option<String> {
    let argument = argument.trim_start();
    match argument.strip_prefix('<') {
        Some(rest) => rest.split_once('>').map(|(address, _)| address.to_owned()),
        None => Some(
            argument
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
    }
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

impl Message {
    /// The value of the first header named `name` (compared without regard to case), unfolded
    /// (a header continued on lines that start with white space is one line) and trimmed.
    /// Encoded words (`=?UTF-8?Q?…?=`) are left as they are.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&Entity::parse(&self.data).headers, name)
    }

    /// The text of the body, its transfer encoding (quoted-printable or base64) undone and
    /// decoded as UTF-8. Of a `multipart/*` message (Keycloak sends `multipart/alternative`
    /// with a text/plain and a text/html part), the text of every `text/*` part, nested
    /// multiparts included, in order, joined by a `\n`; other parts (attachments, images) are
    /// left out.
    pub fn body(&self) -> String {
        Entity::parse(&self.data).text()
    }

    /// Every `https://` and `http://` URL in [`Message::body`], first occurrence first: each
    /// ends at white space, a quote or an angle bracket, and has `&amp;` read as `&` (the HTML
    /// part's escaping), so that the text part's link and the HTML part's are one.
    pub fn links(&self) -> Vec<String> {
        let body = self.body();
        let mut links: Vec<String> = Vec::new();
        let mut rest = body.as_str();
        while let Some(start) = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| rest.find(scheme))
            .min()
        {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
                .unwrap_or(tail.len());
            let link = tail[..end].replace("&amp;", "&");
            if !links.contains(&link) {
                links.push(link);
            }
            rest = &tail[end..];
        }
        links
    }
}

/// A message, or a part of a multipart one: its headers (unfolded) and its raw body.
struct Entity<'a> {
    headers: Vec<(String, String)>,
    body: &'a str,
}

impl<'a> Entity<'a> {
    /// Headers up to the first empty line, the body after it. `text` has `\n` line endings
    /// (a part may start with the empty line: no headers, so text/plain).
    fn parse(text: &'a str) -> Entity<'a> {
        let (head, body) = if let Some(body) = text.strip_prefix('\n') {
            ("", body)
        } else {
            text.split_once("\n\n").unwrap_or((text, ""))
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.to_owned()));
            }
        }
        for (_, value) in &mut headers {
            *value = value.trim().to_owned();
        }
        Entity { headers, body }
    }

    fn text(&self) -> String {
        let content_type =
            header_of(&self.headers, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
        let (mime, parameters) = content_type.split_once(';').unwrap_or((&content_type, ""));
        let mime = mime.trim().to_ascii_lowercase();
        if mime.starts_with("multipart/") {
            let Some(boundary) = parameter(parameters, "boundary") else {
                return String::new();
            };
            return parts(self.body, &boundary)
                .iter()
                .map(|part| Entity::parse(part).text())
                .filter(|text| !text.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
        }
        if !mime.starts_with("text/") {
            return String::new();
        }
        let encoding = header_of(&self.headers, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "quoted-printable" => {
                String::from_utf8_lossy(&quoted_printable(self.body)).into_owned()
            }
            "base64" => String::from_utf8_lossy(&base64(self.body)).into_owned(),
            _ => self.body.to_owned(),
        }
    }
}

fn header_of(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
}

/// The value of parameter `name` in a header's parameters (`; a=b; boundary="x"`), unquoted.
/// Semicolons inside quotes do not separate parameters.
fn parameter(parameters: &str, name: &str) -> Option<String> {
    let mut pieces = Vec::new();
    let (mut piece, mut quoted) = (String::new(), false);
    for c in parameters.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                piece.push(c);
            }
            ';' if !quoted => pieces.push(std::mem::take(&mut piece)),
            _ => piece.push(c),
        }
    }
    pieces.push(piece);
    pieces.iter().find_map(|piece| {
        let (key, value) = piece.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned()
        })
    })
}

/// The parts of a multipart body (RFC 2046 §5.1.1): what lies between the `--boundary` lines,
/// up to `--boundary--`; the preamble and the epilogue are left out. A body without the
/// closing line still gives its last part (a lax sender's).
fn parts(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        if let Some(rest) = line.trim_end().strip_prefix(&delimiter)
            && (rest.is_empty() || rest == "--")
        {
            parts.extend(current.take().map(|lines| lines.join("\n")));
            if rest == "--" {
                return parts;
            }
            current = Some(Vec::new());
            continue;
        }
        if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    parts.extend(current.map(|lines| lines.join("\n")));
    parts
}

/// Quoted-printable decoded (RFC 2045 §6.7): `=XX` is the byte XX, a line ending in `=` is
/// joined to the next (a soft line break), and white space at the end of a line, which
/// transport may have added, is dropped. A `=` not followed by two hex digits is kept.
fn quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches([' ', '\t', '\r']);
        let (line, soft) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'=')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .and_then(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?));
            match escaped {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        if !soft && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Base64 decoded (RFC 2045 §6.8), for a sender that chose it over quoted-printable (as
/// Jakarta Mail does for mostly non-ASCII text): characters outside the alphabet (line
/// breaks) are skipped, and the first `=` ends the data.
fn base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::tcp::OwnedWriteHalf;

    /// Keycloak's invitation as Jakarta Mail would send it, with `\n` for CRLF: a folded
    /// subject, a boundary with `=` in it, a quoted-printable text part whose link is split
    /// by a soft line break, a line the client must dot-stuff, and an HTML part with the same
    /// link (`&amp;`-escaped) and another one.
    const INVITATION: &str = "From: Acme <keycloak@example.com>
To: alice@example.com
Subject: Update Your
 Account
MIME-Version: 1.0
Content-Type: multipart/alternative;
\tboundary=\"----=_Part_0_1234.5678\"

------=_Part_0_1234.5678
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Your administrator has requested that you update your Acme account. Click th=
e link below.

https://example.com/realms/acme/login-actions/action-token?key=3Dabc&amp;cl=
ient_id=3Dx

..hidden by dot-stuffing
------=_Part_0_1234.5678
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

<p><a href=3D\"https://example.com/realms/acme/login-actions/action-token?key=
=3Dabc&amp;client_id=3Dx\">Link</a> or <a href=3D'http://example.org/help'>help=
</a></p>
------=_Part_0_1234.5678--
";

    /// A client's end of an SMTP session.
    struct Client {
        read: BufReader<tokio::net::tcp::OwnedReadHalf>,
        write: OwnedWriteHalf,
    }

    impl Client {
        /// Connected, and greeted.
        async fn connect(port: u16) -> Client {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (read, write) = stream.into_split();
            let mut client = Client {
                read: BufReader::new(read),
                write,
            };
            client.expect(220).await;
            client
        }

        async fn send(&mut self, text: &str) {
            self.write.write_all(text.as_bytes()).await.unwrap();
        }

        /// `command` sent with CRLF; its reply's lines, which must have code `code`.
        async fn command(&mut self, command: &str, code: u16) -> Vec<String> {
            self.send(&format!("{command}\r\n")).await;
            self.expect(code).await
        }

        /// A reply's lines (one, or several as `250-…` up to `250 …`), with code `code`.
        async fn expect(&mut self, code: u16) -> Vec<String> {
            let mut reply = Vec::new();
            loop {
                let line = read_line(&mut self.read).await.unwrap().unwrap();
                assert!(line.starts_with(&code.to_string()), "{reply:?} then {line}");
                let last = line.as_bytes().get(3) != Some(&b'-');
                reply.push(line);
                if last {
                    return reply;
                }
            }
        }
    }

    /// A whole session delivering `data` (lines ending in CRLF, not yet dot-stuffed).
    async fn deliver(port: u16, from: &str, to: &[&str], data: &str) {
        let mut client = Client::connect(port).await;
        client.command("EHLO client.example", 250).await;
        client.command(&format!("MAIL FROM:<{from}>"), 250).await;
        for recipient in to {
            client.command(&format!("RCPT TO:<{recipient}>"), 250).await;
        }
        client.command("DATA", 354).await;
        client.send(data).await;
        client.command(".", 250).await;
        client.command("QUIT", 221).await;
    }

    #[tokio::test]
    async fn receives_several_messages_on_one_connection() {
        let sink = SmtpSink::start().await;
        let mut client = Client::connect(sink.port()).await;

        let ehlo = client.command("ehlo client.example", 250).await;
        assert!(ehlo.iter().any(|l| l.ends_with("8BITMIME")), "{ehlo:?}");
        assert!(
            !ehlo
                .iter()
                .any(|l| l.contains("STARTTLS") || l.contains("AUTH")),
            "{ehlo:?}"
        );
        client.command("RCPT TO:<early@example.com>", 503).await;
        client.command("DATA", 503).await;
        client.command("XYZZY", 502).await;
        client.command("NOOP", 250).await;
        // A transaction abandoned: nothing of it may reach the next message.
        client.command("MAIL FROM:<junk@example.com>", 250).await;
        client.command("RCPT TO:<junk@example.com>", 250).await;
        client.command("RSET", 250).await;

        client
            .command("MAIL FROM:<keycloak@example.com> BODY=8BITMIME", 250)
            .await;
        client.command("RCPT TO:<alice@example.com>", 250).await;
        client.command("rcpt to: <Carol@Example.com>", 250).await;
        client.command("DATA", 354).await;
        client.send(&INVITATION.replace('\n', "\r\n")).await;
        client.command(".", 250).await;
        assert_eq!(sink.messages().len(), 1);

        // The second one with bare LFs and lowercase commands, as a lax client sends them.
        client.send("mail from:<noreply@example.com>\n").await;
        client.expect(250).await;
        client.send("rcpt to:<bob@example.com>\n").await;
        client.expect(250).await;
        client.send("data\n").await;
        client.expect(354).await;
        client
            .send("Subject: Plain\n\nHello Bob,\n..leading dot\nsee <https://example.com/plain> now\n.\n")
            .await;
        client.expect(250).await;
        client.command("QUIT", 221).await;
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client.read, &mut rest)
            .await
            .unwrap();
        assert!(rest.is_empty(), "after QUIT: {rest:?}");

        let messages = sink.messages();
        assert_eq!(messages.len(), 2);
        let invitation = &messages[0];
        assert_eq!(invitation.from, "keycloak@example.com");
        assert_eq!(invitation.to, ["alice@example.com", "Carol@Example.com"]);
        assert_eq!(
            invitation.header("subject").as_deref(),
            Some("Update Your Account")
        );
        assert_eq!(
            invitation.header("TO").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(invitation.header("X-Missing"), None);
        assert!(
            invitation
                .data
                .starts_with("From: Acme <keycloak@example.com>\nTo: ")
        );
        assert_eq!(
            invitation.body(),
            "Your administrator has requested that you update your Acme account. Click the \
             link below.\n\
             \n\
             https://example.com/realms/acme/login-actions/action-token?key=abc&amp;client_id=x\n\
             \n\
             .hidden by dot-stuffing\n\
             <p><a href=\"https://example.com/realms/acme/login-actions/action-token?key=abc&amp;\
             client_id=x\">Link</a> or <a href='http://example.org/help'>help</a></p>"
        );
        assert_eq!(
            invitation.links(),
            [
                "https://example.com/realms/acme/login-actions/action-token?key=abc&client_id=x",
                "http://example.org/help",
            ]
        );

        let plain = &messages[1];
        assert_eq!(plain.from, "noreply@example.com");
        assert_eq!(plain.to, ["bob@example.com"]);
        assert_eq!(plain.header("Subject").as_deref(), Some("Plain"));
        assert_eq!(
            plain.body(),
            "Hello Bob,\n.leading dot\nsee <https://example.com/plain> now\n"
        );
        assert_eq!(plain.links(), ["https://example.com/plain"]);
    }

    #[tokio::test]
    async fn waits_for_the_message_to_its_recipient() {
        let sink = SmtpSink::start().await;
        let port = sink.port();
        deliver(
            port,
            "keycloak@example.com",
            &["alice@example.com"],
            "Subject: For Alice\r\n\r\nHi\r\n",
        )
        .await;
        // Concurrently with the wait, and on a connection of its own.
        let sending = tokio::spawn(deliver(
            port,
            "keycloak@example.com",
            &["bob@example.com"],
            "Subject: For Bob\r\n\r\nHi\r\n",
        ));
        let message = sink
            .wait_for("BOB@example.com", Duration::from_secs(10))
            .await;
        assert_eq!(message.to, ["bob@example.com"]);
        assert_eq!(message.header("Subject").as_deref(), Some("For Bob"));
        sending.await.unwrap();

        // Nothing to Carol: the panic lists what came instead.
        let waiting = tokio::spawn(async move {
            sink.wait_for("carol@example.com", Duration::from_millis(300))
                .await
        });
        let panic = waiting.await.unwrap_err().into_panic();
        let panic = panic.downcast_ref::<String>().unwrap();
        assert!(panic.contains("no e-mail to carol@example.com"), "{panic}");
        assert!(panic.contains("\"For Alice\""), "{panic}");
        assert!(panic.contains("[\"bob@example.com\"]"), "{panic}");
    }

    #[test]
    fn decodes_base64_and_unquoted_boundaries() {
        let message = Message {
            from: String::new(),
            to: vec![],
            data: "Content-Type: multipart/mixed; boundary=outer\n\npreamble\n--outer\n\
                   Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n\
                   R3LDvMOfZSwg\nV2VsdA==\n--outer\nContent-Type: image/png\n\nPNG\n--outer--\n"
                .to_owned(),
        };
        assert_eq!(message.body(), "Grüße, Welt");
    }
}
