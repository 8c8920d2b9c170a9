//! The admin endpoint for bucket exports, imports and checks. Requests are signed like
//! any S3 request (SigV4 with the node's key; s3s checks the signature before they get
//! here) and addressed path-style:
//!
//! - `GET /{bucket}?ingot-export[&history=N|all]`: the bucket as a CAR file
//!   (`application/vnd.ipld.car`), streamed; `x-ingot-head-commit` and `x-ingot-root`
//!   name its head. The node keeps serving; the export is of the head at its start.
//! - `POST /{bucket}?ingot-import` with a CAR file as the body: creates the bucket
//!   from it, all or nothing; a damaged file gets `400 InvalidRequest` whose message
//!   names the damaged block and its object.
//! - `GET /{bucket}?ingot-verify[&history=N|all]`: checks every block reachable from
//!   the head; a text report, the count in `x-ingot-problems`.

use crate::body::{ByteCounter, PumpFailure, into_blob, pump};
use crate::error::s3_error;
use crate::error_answer::ErrorSlot;
use crate::handler::EngineSlot;
use crate::op_name::OpName;
use bytes::Bytes;
use engine::Engine;
use engine::archive::{CheckOptions, History};
use hyper::http::Extensions;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use s3s::dto::StreamingBlob;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminOp {
    Export,
    Import,
    Verify,
}

impl AdminOp {
    fn name(self) -> &'static str {
        match self {
            Self::Export => "IngotExportBucket",
            Self::Import => "IngotImportBucket",
            Self::Verify => "IngotVerifyBucket",
        }
    }
}

/// The admin operation a request asks for and its bucket, if it is one.
fn admin_op(method: &Method, uri: &Uri) -> Option<(AdminOp, String)> {
    let query = uri.query()?;
    let flag = |f: &str| {
        query
            .split('&')
            .any(|p| p == f || p.starts_with(&format!("{f}=")))
    };
    let op = match *method {
        Method::GET if flag("ingot-export") => AdminOp::Export,
        Method::GET if flag("ingot-verify") => AdminOp::Verify,
        Method::POST if flag("ingot-import") => AdminOp::Import,
        _ => return None,
    };
    let bucket = uri.path().strip_prefix('/')?.trim_end_matches('/');
    (!bucket.is_empty() && !bucket.contains('/')).then(|| (op, bucket.to_owned()))
}

fn param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

fn history(uri: &Uri) -> S3Result<History> {
    match param(uri, "history") {
        None => Ok(History::Count(0)),
        Some(h) => History::parse(h).ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "history must be a number of past commits or \"all\".",
            )
        }),
    }
}

/// The custom route s3s hands admin requests to.
pub struct AdminRoute {
    pub engine: EngineSlot,
    pub bytes_in: ByteCounter,
    pub bytes_out: ByteCounter,
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _: &HeaderMap, _: &mut Extensions) -> bool {
        admin_op(method, uri).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        if let Some((op, _)) = admin_op(&req.method, &req.uri)
            && let Some(slot) = req.extensions.get::<OpName>()
        {
            slot.set(op.name());
        }
        ErrorSlot::of(&req.extensions).keep(match req.credentials {
            Some(_) => Ok(()),
            None => Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Admin requests must be signed with the node's key.",
            )),
        })
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let errors = ErrorSlot::of(&req.extensions);
        errors.keep(self.answer(req).await)
    }
}

impl AdminRoute {
    async fn answer(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let (op, bucket) = admin_op(&req.method, &req.uri)
            .ok_or_else(|| S3Error::new(S3ErrorCode::MethodNotAllowed))?;
        let engine = self.engine.get().cloned().ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "The node is recovering; try again shortly.",
            )
        })?;
        match op {
            AdminOp::Export => self.export(&engine, &bucket, history(&req.uri)?).await,
            AdminOp::Verify => verify(&engine, &bucket, history(&req.uri)?).await,
            AdminOp::Import => self.import(&engine, &bucket, req.input).await,
        }
    }
}

fn header(resp: &mut S3Response<Body>, name: &'static str, value: String) {
    if let Ok(v) = value.parse() {
        resp.headers.insert(name, v);
    }
}

fn text_response(status: StatusCode, body: String) -> S3Response<Body> {
    let mut resp = S3Response::with_status(Body::from(Bytes::from(body)), status);
    header(
        &mut resp,
        "content-type",
        "text/plain; charset=utf-8".into(),
    );
    resp
}

impl AdminRoute {
    async fn export(
        &self,
        engine: &Arc<Engine>,
        bucket: &str,
        history: History,
    ) -> S3Result<S3Response<Body>> {
        let (head, blocks) = engine
            .export_bucket(bucket, history)
            .await
            .map_err(s3_error)?;
        let (forward, rx) = engine::car_bytes(&head, blocks);
        tokio::spawn(forward);
        tracing::info!(bucket, head = %head.commit, "export started");
        let blob = into_blob(rx, self.bytes_out.clone());
        let mut resp = S3Response::new(Body::from(blob));
        header(&mut resp, "content-type", "application/vnd.ipld.car".into());
        header(&mut resp, "x-ingot-head-commit", head.commit.to_string());
        header(&mut resp, "x-ingot-root", head.root.to_string());
        Ok(resp)
    }

    async fn import(
        &self,
        engine: &Arc<Engine>,
        bucket: &str,
        body: Body,
    ) -> S3Result<S3Response<Body>> {
        let (tx, rx) = engine::body_channel();
        let failure = PumpFailure::default();
        let feed = pump(
            StreamingBlob::from(body),
            tx,
            None,
            failure.clone(),
            self.bytes_in.clone(),
        );
        let (_, imported) = tokio::join!(feed, engine.import_bucket(bucket, rx));
        if let Some(e) = failure.take() {
            return Err(e);
        }
        let r = imported.map_err(s3_error)?;
        tracing::info!(bucket, head = %r.head.commit, objects = r.check.objects,
            blocks = r.blocks, "bucket imported");
        let body = r.render(bucket);
        let mut resp = text_response(StatusCode::OK, body);
        header(&mut resp, "x-ingot-head-commit", r.head.commit.to_string());
        header(&mut resp, "x-ingot-root", r.head.root.to_string());
        Ok(resp)
    }
}

async fn verify(engine: &Engine, bucket: &str, history: History) -> S3Result<S3Response<Body>> {
    let report = engine
        .verify_bucket(bucket, CheckOptions::full(history))
        .await
        .map_err(s3_error)?;
    if !report.is_ok() {
        tracing::error!(
            bucket,
            problems = report.problem_count,
            "verify found damage"
        );
    }
    let mut resp = text_response(StatusCode::OK, report.render(bucket));
    header(
        &mut resp,
        "x-ingot-problems",
        report.problem_count.to_string(),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_are_recognised_by_method_query_and_path() {
        let op = |m: Method, u: &str| admin_op(&m, &u.parse().unwrap());
        assert_eq!(
            op(Method::GET, "/photos?ingot-export"),
            Some((AdminOp::Export, "photos".into()))
        );
        assert_eq!(
            op(Method::GET, "/photos/?ingot-export&history=3"),
            Some((AdminOp::Export, "photos".into()))
        );
        assert_eq!(
            op(Method::POST, "/photos?ingot-import"),
            Some((AdminOp::Import, "photos".into()))
        );
        assert_eq!(
            op(Method::GET, "/photos?ingot-verify="),
            Some((AdminOp::Verify, "photos".into()))
        );
        assert_eq!(op(Method::PUT, "/photos?ingot-import"), None);
        assert_eq!(op(Method::GET, "/photos/key?ingot-export"), None);
        assert_eq!(op(Method::GET, "/photos?list-type=2"), None);
        assert_eq!(op(Method::GET, "/?ingot-export"), None);
        let uri: Uri = "/b?ingot-export&history=all".parse().unwrap();
        assert_eq!(history(&uri).unwrap(), History::AsFarAsPresent);
        let uri: Uri = "/b?ingot-export&history=x".parse().unwrap();
        assert!(history(&uri).is_err());
    }
}
