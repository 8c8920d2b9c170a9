//! Browser-form uploads (PostObject): a form signed with a SigV4 POST policy uploads
//! its file; a form the policy does not allow, an expired or unsigned one, a bad
//! signature or a file outside `content-length-range` is refused with AWS's code and
//! writes nothing; and an anonymous form is answered before its file is read, however
//! large the file is.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::binary::{Running, free_port, serve};
use common::{ACCESS_KEY, SECRET_KEY, client, keys, settings, start, start_with};
use raw::{Answer, amz_stamp, connect, head, read_answer};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// A form's fields, in order.
type Fields = Vec<(String, String)>;

const BOUNDARY: &str = "----ingotFormBoundary7MA4YWxkTrZu0gW";

/// `["eq", "$field", "value"]`.
fn eq(field: &str, value: &str) -> String {
    format!(r#"["eq", "${field}", "{value}"]"#)
}

/// The fields of a form for `bucket`, signed with `secret`: `fields` as given, then the
/// SigV4 fields and a policy of `conditions` (plus the bucket and SigV4 fields, which
/// every policy names) expiring `expires_in_s` seconds from now (negative: past).
fn signed(
    bucket: &str,
    fields: &[(&str, &str)],
    conditions: &[String],
    expires_in_s: i64,
    access: &str,
    secret: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
    let now = SystemTime::now();
    let (stamp, date) = amz_stamp(now);
    let credential = format!("{access}/{date}/us-east-1/s3/aws4_request");
    let offset = Duration::from_secs(expires_in_s.unsigned_abs());
    let expiry = if expires_in_s >= 0 {
        now + offset
    } else {
        now - offset
    };
    let (e, _) = amz_stamp(expiry);
    let expiration = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &e[..4],
        &e[4..6],
        &e[6..8],
        &e[9..11],
        &e[11..13],
        &e[13..15]
    );
    let mut all = vec![
        format!(r#"{{"bucket": "{bucket}"}}"#),
        eq("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        eq("x-amz-credential", &credential),
        eq("x-amz-date", &stamp),
    ];
    all.extend(conditions.iter().cloned());
    let policy = format!(
        r#"{{"expiration": "{expiration}", "conditions": [{}]}}"#,
        all.join(", ")
    );
    let policy = base64_simd::STANDARD.encode_to_string(policy);
    let key = generate_signing_key(secret, now, "us-east-1", "s3");
    let signature = calculate_signature(key.as_ref(), policy.as_bytes());
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend([
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("X-Amz-Date".to_owned(), stamp),
        ("Policy".to_owned(), policy),
        ("x-amz-signature".to_owned(), signature),
    ]);
    out
}

/// The fields of a form signed with the node's root key.
fn root_signed(
    bucket: &str,
    fields: &[(&str, &str)],
    conditions: &[String],
) -> Vec<(String, String)> {
    signed(bucket, fields, conditions, 600, ACCESS_KEY, SECRET_KEY)
}

/// A `multipart/form-data` body: the fields, then the file.
fn form_body(fields: &[(String, String)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(file_head(filename).as_bytes());
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn file_head(filename: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
}

fn post_head(path: &str, host: &str, content_length: usize) -> Vec<u8> {
    head(
        "POST",
        path,
        &[
            ("Host".to_owned(), host.to_owned()),
            (
                "Content-Type".to_owned(),
                format!("multipart/form-data; boundary={BOUNDARY}"),
            ),
            ("Content-Length".to_owned(), content_length.to_string()),
        ],
    )
}

/// POSTs a form to `path` and reads the answer.
fn post_form(addr: SocketAddr, path: &str, body: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(&post_head(path, &addr.to_string(), body.len()))
        .unwrap();
    // A refused form may be answered (and the connection closed) before all of it
    // is sent; the answer is still there to read.
    let _ = s.write_all(body);
    read_answer(&mut s)
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn error_code(a: &Answer) -> &str {
    let start = a.body.find("<Code>").map_or(0, |i| i + 6);
    let end = a.body.find("</Code>").unwrap_or(start);
    &a.body[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_signed_form_uploads_its_file_with_headers_and_metadata() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("forms").send().await.unwrap();
    let data = common::body(300_000, 1);
    let fields = root_signed(
        "forms",
        &[
            ("key", "uploads/${filename}"),
            ("Content-Type", "image/png"),
            ("Cache-Control", "max-age=60"),
            ("x-amz-meta-color", "blue"),
            ("acl", "private"),
            ("x-ignore-note", "not in the policy"),
        ],
        &[
            r#"["starts-with", "$key", "uploads/"]"#.to_owned(),
            r#"["starts-with", "$Content-Type", "image/"]"#.to_owned(),
            eq("cache-control", "max-age=60"),
            r#"["starts-with", "$x-amz-meta-color", ""]"#.to_owned(),
            r#"{"acl": "private"}"#.to_owned(),
            r#"["content-length-range", 1, 1048576]"#.to_owned(),
        ],
    );
    let a = post_form(node.addr(), "/forms", &form_body(&fields, "cat.png", &data));
    assert_eq!(a.status, 204, "{}", a.body);
    let etag = format!("\"{}\"", common::md5_hex(&data));
    assert_eq!(header(&a, "etag"), Some(etag.as_str()));
    assert_eq!(
        header(&a, "location"),
        Some(format!("http://{}/forms/uploads/cat.png", node.addr()).as_str())
    );
    let got = s3
        .get_object()
        .bucket("forms")
        .key("uploads/cat.png")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("image/png"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert!(common::read_all(got).await == data);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_its_policy_does_not_allow_is_refused_and_writes_nothing() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("strict").send().await.unwrap();
    let key_a = [("key", "a")];
    let cases: Vec<(&str, Fields, &str)> = vec![
        // The object form is an exact match.
        (
            "object eq",
            root_signed("strict", &key_a, &[r#"{"key": "b"}"#.to_owned()]),
            r#"Invalid according to Policy: Policy Condition failed: ["eq", "$key", "b"]"#,
        ),
        (
            "eq",
            root_signed("strict", &key_a, &[eq("key", "b")]),
            r#"Invalid according to Policy: Policy Condition failed: ["eq", "$key", "b"]"#,
        ),
        (
            "starts-with",
            root_signed(
                "strict",
                &key_a,
                &[r#"["starts-with", "$key", "user/"]"#.to_owned()],
            ),
            r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]"#,
        ),
        // A field no condition names.
        (
            "extra field",
            root_signed(
                "strict",
                &[("key", "a"), ("x-amz-meta-owner", "eve")],
                &[eq("key", "a")],
            ),
            "Invalid according to Policy: Extra input fields: x-amz-meta-owner",
        ),
        // The policy is for another bucket.
        (
            "bucket",
            root_signed("other", &key_a, &[eq("key", "a")]),
            r#"Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "other"]"#,
        ),
        (
            "expired",
            signed(
                "strict",
                &key_a,
                &[eq("key", "a")],
                -60,
                ACCESS_KEY,
                SECRET_KEY,
            ),
            "Invalid according to Policy: Policy expired.",
        ),
    ];
    for (what, fields, message) in cases {
        let a = post_form(node.addr(), "/strict", &form_body(&fields, "f", b"data"));
        assert_eq!(a.status, 403, "{what}: {}", a.body);
        assert_eq!(error_code(&a), "AccessDenied", "{what}");
        assert!(
            a.body
                .contains(&format!("<Message>{}</Message>", xml(message))),
            "{what}: {}",
            a.body
        );
    }
    assert!(keys(&s3, "strict").await.is_empty());
    node.stop().await.unwrap();
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_forms_are_refused() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("auth").send().await.unwrap();
    let conditions = [eq("key", "k")];
    let mut bad_signature = root_signed("auth", &[("key", "k")], &conditions);
    let sig = &mut bad_signature.last_mut().unwrap().1;
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    sig.replace_range(..1, flipped);
    let wrong_secret = signed(
        "auth",
        &[("key", "k")],
        &conditions,
        600,
        ACCESS_KEY,
        "not-the-secret",
    );
    let unknown_key = signed(
        "auth",
        &[("key", "k")],
        &conditions,
        600,
        "AKIAUNKNOWN",
        SECRET_KEY,
    );
    let owned = |f: &[(&str, &str)]| -> Vec<(String, String)> {
        f.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let anonymous = owned(&[("key", "k")]);
    let sigv2 = owned(&[
        ("key", "k"),
        ("AWSAccessKeyId", ACCESS_KEY),
        ("policy", "e30="),
        ("signature", "c2lnbmF0dXJl"),
    ]);
    let cases = [
        ("bad signature", bad_signature, 403, "SignatureDoesNotMatch"),
        ("wrong secret", wrong_secret, 403, "SignatureDoesNotMatch"),
        ("unknown key", unknown_key, 403, "InvalidAccessKeyId"),
        ("anonymous", anonymous, 403, "AccessDenied"),
        ("sigv2", sigv2, 400, "InvalidRequest"),
    ];
    for (what, fields, status, code) in cases {
        let a = post_form(node.addr(), "/auth", &form_body(&fields, "f", b"data"));
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(error_code(&a), code, "{what}");
    }
    // A signed policy that is not a policy document.
    let mut malformed = root_signed("auth", &[("key", "k")], &conditions);
    let n = malformed.len();
    malformed[n - 2].1 = base64_simd::STANDARD.encode_to_string("not json");
    let a = post_form(node.addr(), "/auth", &form_body(&malformed, "f", b"x"));
    assert_eq!(
        error_code(&a),
        "SignatureDoesNotMatch",
        "the signature covers it"
    );
    assert!(keys(&s3, "auth").await.is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_policy_is_refused_as_invalid() {
    use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("docs").send().await.unwrap();
    let now = SystemTime::now();
    let (stamp, date) = amz_stamp(now);
    let policy = base64_simd::STANDARD.encode_to_string(r#"{"conditions": []}"#);
    let key = generate_signing_key(SECRET_KEY, now, "us-east-1", "s3");
    let fields: Vec<(String, String)> = [
        ("key", "k".to_owned()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        (
            "x-amz-credential",
            format!("{ACCESS_KEY}/{date}/us-east-1/s3/aws4_request"),
        ),
        ("x-amz-date", stamp),
        (
            "x-amz-signature",
            calculate_signature(key.as_ref(), policy.as_bytes()),
        ),
        ("policy", policy),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let a = post_form(node.addr(), "/docs", &form_body(&fields, "f", b"x"));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(error_code(&a), "InvalidPolicyDocument");
    assert!(keys(&s3, "docs").await.is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_outside_the_length_range_is_refused_and_not_written() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("sized").send().await.unwrap();
    let range = r#"["content-length-range", 10, 1000]"#.to_owned();
    let fields = root_signed("sized", &[("key", "k")], &[eq("key", "k"), range]);
    // Over: refused as it streams (the file is far over, and bigger than one piece).
    let a = post_form(
        node.addr(),
        "/sized",
        &form_body(&fields, "f", &common::body(200_000, 2)),
    );
    assert_eq!(
        (a.status, error_code(&a)),
        (400, "EntityTooLarge"),
        "{}",
        a.body
    );
    let a = post_form(node.addr(), "/sized", &form_body(&fields, "f", &[1; 1001]));
    assert_eq!(
        (a.status, error_code(&a)),
        (400, "EntityTooLarge"),
        "{}",
        a.body
    );
    // Under: refused at its end.
    let a = post_form(node.addr(), "/sized", &form_body(&fields, "f", &[1; 9]));
    assert_eq!(
        (a.status, error_code(&a)),
        (400, "EntityTooSmall"),
        "{}",
        a.body
    );
    assert!(keys(&s3, "sized").await.is_empty());
    // The bounds themselves are allowed.
    for n in [10, 1000] {
        let a = post_form(node.addr(), "/sized", &form_body(&fields, "f", &vec![7; n]));
        assert_eq!(a.status, 204, "{n}: {}", a.body);
        let head = s3
            .head_object()
            .bucket("sized")
            .key("k")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(n as i64));
    }
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_whose_file_stops_arriving_times_out_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    s.limits.body_read_timeout = Duration::from_secs(2);
    let node = start_with(s).await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("stalled").send().await.unwrap();
    let fields = root_signed("stalled", &[("key", "k")], &[eq("key", "k")]);
    let body = form_body(&fields, "f", &[5; 100_000]);
    let addr = node.addr();
    // The head promises the whole form; the file stops half-way and nothing follows.
    let a = tokio::task::spawn_blocking(move || {
        let mut s = connect(addr);
        s.write_all(&post_head("/stalled", &addr.to_string(), body.len()))
            .unwrap();
        s.write_all(&body[..body.len() / 2]).unwrap();
        read_answer(&mut s)
    })
    .await
    .unwrap();
    assert_eq!(
        (a.status, error_code(&a)),
        (400, "RequestTimeout"),
        "{}",
        a.body
    );
    assert!(keys(&s3, "stalled").await.is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_chooses_its_answer_redirect_or_status() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("answers").send().await.unwrap();
    let etag = format!("\"{}\"", common::md5_hex(b"hi"));
    let upload = |extra: (&str, &str)| {
        let fields = root_signed(
            "answers",
            &[("key", "a b"), extra],
            &[eq("key", "a b"), eq(extra.0, extra.1)],
        );
        post_form(node.addr(), "/answers", &form_body(&fields, "f", b"hi"))
    };
    let a = upload(("success_action_redirect", "https://example.com/done?x=1"));
    assert_eq!(a.status, 303, "{}", a.body);
    let redirect = format!(
        "https://example.com/done?x=1&bucket=answers&key=a%20b&etag=%22{}%22",
        common::md5_hex(b"hi")
    );
    assert_eq!(header(&a, "location"), Some(redirect.as_str()));
    let a = upload(("success_action_status", "200"));
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    assert_eq!(header(&a, "etag"), Some(etag.as_str()));
    let a = upload(("success_action_status", "201"));
    assert_eq!(a.status, 201);
    let location = format!("http://{}/answers/a%20b", node.addr());
    assert_eq!(
        a.body,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{location}</Location><Bucket>answers</Bucket><Key>a b</Key><ETag>{}</ETag></PostResponse>",
            xml(&etag)
        )
    );
    // Not a status AWS offers: the default, 204.
    let a = upload(("success_action_status", "404"));
    assert_eq!(a.status, 204);
    assert_eq!(header(&a, "location"), Some(location.as_str()));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_a_put_would_refuse_are_refused_in_a_form() {
    let (node, _dir) = start().await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("settings").send().await.unwrap();
    let cases = [
        ("acl", "public-read", 400, "AccessControlListNotSupported"),
        ("tagging", "<Tagging/>", 501, "NotImplemented"),
        ("x-amz-storage-class", "GLACIER", 400, "InvalidStorageClass"),
        (
            "x-amz-server-side-encryption",
            "AES256",
            501,
            "NotImplemented",
        ),
    ];
    for (field, value, status, code) in cases {
        let fields = root_signed(
            "settings",
            &[("key", "k"), (field, value)],
            &[eq("key", "k"), eq(field, value)],
        );
        let a = post_form(node.addr(), "/settings", &form_body(&fields, "f", b"x"));
        assert_eq!(
            (a.status, error_code(&a)),
            (status, code),
            "{field}: {}",
            a.body
        );
    }
    // A form POST to an object or to the root names no bucket to upload into.
    let fields = root_signed("settings", &[("key", "k")], &[eq("key", "k")]);
    for path in ["/settings/k", "/"] {
        let a = post_form(node.addr(), path, &form_body(&fields, "f", b"x"));
        assert_eq!(
            (a.status, error_code(&a)),
            (405, "MethodNotAllowed"),
            "{path}"
        );
    }
    assert!(keys(&s3, "settings").await.is_empty());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_on_a_virtual_host_uploads_into_that_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path(), "127.0.0.1:0".parse().unwrap());
    settings.domain = Some("s3.test".to_owned());
    let node = common::start_with(settings).await;
    let s3 = client(node.addr());
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    let fields = root_signed("vhost", &[("key", "k")], &[eq("key", "k")]);
    let body = form_body(&fields, "f", b"virtual");
    let mut s = connect(node.addr());
    s.write_all(&post_head("/", "vhost.s3.test", body.len()))
        .unwrap();
    s.write_all(&body).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(header(&a, "location"), Some("http://vhost.s3.test/k"));
    let got = s3
        .get_object()
        .bucket("vhost")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(common::read_all(got).await, b"virtual");
    node.stop().await.unwrap();
}

/// The resident set of a process, current and peak (`VmRSS`, `VmHWM`), in bytes.
fn rss_bytes(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The real binary as a child process, so its memory is its own to measure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_form_with_a_1_gib_file_is_refused_before_the_file_is_read() {
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const FILE_BYTES: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Running::spawn(
        serve(dir.path(), port, 1)
            .env("INGOT_ACCESS_KEY", ACCESS_KEY)
            .env("INGOT_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null()),
    );
    let pid = node.id();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    node.wait_ready(port, "node");
    client(addr)
        .create_bucket()
        .bucket("open")
        .send()
        .await
        .unwrap();
    let (rss_before, peak_before) = rss_bytes(pid);

    // The form: a key, then a 1 GiB file generated as it is sent (never allocated).
    let fields = [("key".to_owned(), "big".to_owned())];
    let mut lead = form_body(&fields, "big.bin", b"");
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    lead.truncate(lead.len() - tail.len());
    let total = lead.len() as u64 + FILE_BYTES + tail.len() as u64;
    let mut s = connect(addr);
    s.write_all(&post_head("/open", &addr.to_string(), total as usize))
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (mut s, sent) = (s.try_clone().unwrap(), sent.clone());
        std::thread::spawn(move || {
            let piece = vec![b'z'; 64 << 10];
            let _ = s.write_all(&lead);
            while sent.load(Relaxed) < FILE_BYTES {
                // Ends when the node closes the connection.
                if s.write_all(&piece).is_err() {
                    return;
                }
                sent.fetch_add(piece.len() as u64, Relaxed);
            }
        })
    };
    let a = read_answer(&mut s);
    let sent_at_answer = sent.load(Relaxed);
    assert_eq!(
        (a.status, error_code(&a)),
        (403, "AccessDenied"),
        "{}",
        a.body
    );
    assert_eq!(header(&a, "connection"), Some("close"));
    // What was sent by then sits in socket buffers and one read of the node's; the
    // file itself was not read.
    assert!(
        sent_at_answer < FILE_BYTES / 16,
        "answered after {sent_at_answer} of {FILE_BYTES} file bytes"
    );
    // The writer's next write fails. The node may have reset the connection already
    // (it closed with the file's bytes unread), which ends the writer the same way.
    match s.shutdown(std::net::Shutdown::Both) {
        Err(e) if e.kind() != std::io::ErrorKind::NotConnected => panic!("shutdown: {e}"),
        _ => {}
    }
    writer.join().unwrap();
    let (rss_after, peak_after) = rss_bytes(pid);
    let allowed = 32 << 20;
    assert!(
        peak_after < peak_before + allowed && rss_after < rss_before + allowed,
        "RSS {rss_before} -> {rss_after}, peak {peak_before} -> {peak_after}"
    );
    assert!(keys(&client(addr), "open").await.is_empty());
}
