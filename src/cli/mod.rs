//! The `aigate` command line, built from the same engine as the plugin.

mod approval;
mod case;
mod check;
mod eval;
mod explain;
mod lint;
mod readiness;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "aigate",
    version,
    about = "Validate and exercise aigate policies",
    after_help = "Any file argument may be `-` to read it from stdin, one per command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy; print a summary, or every error with its JSON path.
    Check {
        /// Policy file (the plugin configuration JSON), or `-` for stdin.
        policy: PathBuf,
    },
    /// One dry-run decision for a request described in JSON, with every rule applied.
    Eval {
        /// Policy file, or `-` for stdin.
        policy: PathBuf,
        /// Request file (method, path, headers, claims or credential, body), or `-` for stdin.
        request: PathBuf,
        /// Unix seconds to judge at (default: the clock).
        #[arg(long, value_parser = case::parse_now)]
        now: Option<u64>,
        /// Print JSON (decision, reply, audit record, explanation).
        #[arg(long)]
        json: bool,
        /// A JSON answer to the request (a model's, or an MCP server's list): judge it as
        /// the plugin would, and show what the client would get. `-` for stdin.
        #[arg(long, conflicts_with = "answer_text")]
        answer: Option<PathBuf>,
        /// The exact body of an answer (a streamed answer's server-sent events, or JSON
        /// text), judged as the plugin judges it for its content type. `-` for stdin.
        #[arg(long)]
        answer_text: Option<PathBuf>,
        /// The content type of --answer-text (default: text/event-stream when the request
        /// asked for a stream, else application/json).
        #[arg(long, requires = "answer_text")]
        answer_content_type: Option<String>,
    },
    /// The release gate: lint the policy and replay known outcomes; exit 1 when not ready.
    Readiness {
        /// Policy file, or `-` for stdin.
        policy: PathBuf,
        /// Known outcomes: {"now": T, "cases": [{"name", "request", "answer" or "answer_text"?, "expect"}]};
        /// `-` for stdin.
        #[arg(long)]
        cases: PathBuf,
        /// Unix seconds for cases that set no time (default: the clock).
        #[arg(long, value_parser = case::parse_now)]
        now: Option<u64>,
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        /// Write the report here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the args_digest of a tool call's arguments (RFC 8785 JSON, SHA-256, base64url).
    Digest {
        /// File holding the arguments object, or `-` for stdin.
        args: PathBuf,
    },
    /// Mint a signed, single-use approval grant for one tool call.
    Approve {
        /// Private JWK of the approval service (as printed by `aigate keygen`), or `-` for stdin.
        #[arg(long)]
        key: PathBuf,
        /// Subject the grant is for (the caller's `sub`).
        #[arg(long)]
        sub: String,
        /// The subject's identity provider (its token's `iss`): required by a gateway that
        /// trusts several providers.
        #[arg(long)]
        sub_iss: Option<String>,
        /// The tenant the subject acts in (its token's tenant claim): a grant naming one is
        /// accepted for that tenant only.
        #[arg(long)]
        tenant: Option<String>,
        /// Tool the grant is for, as the catalogue names it.
        #[arg(long)]
        tool: String,
        /// File holding the exact arguments being approved, or `-` for stdin.
        #[arg(long)]
        args: PathBuf,
        /// Who approved (named in the audit record; not empty or blank).
        #[arg(long)]
        approver: String,
        /// Lifetime in seconds (1 to 86400); with --policy, a longer one than its
        /// `approval.max_age_seconds` is cut to it (the gateway refuses older grants).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
        /// The policy the grant is for: its `approval.issuer` and `approval.audience` become
        /// the grant's `iss` and `aud`, and a grant its gateway would refuse is not signed
        /// (another issuer or audience, a key its `approval.jwks` lacks, a tool outside its
        /// catalogue, arguments the tool's `constraints` refuse, no --sub-iss where it trusts
        /// several identity providers). `-` for stdin.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The grant's `iss` (without --policy); with --policy, must equal its `approval.issuer`.
        #[arg(long)]
        iss: Option<String>,
        /// The grant's `aud` (without --policy); with --policy, must equal its `approval.audience`.
        #[arg(long)]
        aud: Option<String>,
        /// Grant id (random when omitted).
        #[arg(long)]
        jti: Option<String>,
        /// Issue time, Unix seconds (default: --now), not after --now: the gateway refuses a
        /// grant issued in its future.
        #[arg(long, value_parser = case::parse_now)]
        iat: Option<u64>,
        /// When the gateway is presented the grant, Unix seconds (default: the clock), for
        /// grants in case files replayed at a pinned `now`.
        #[arg(long, value_parser = case::parse_now)]
        now: Option<u64>,
    },
    /// Generate an approval-service signing key (private JWK and public JWKS).
    Keygen {
        #[arg(long, default_value = "EdDSA", value_parser = ["EdDSA", "HS256"])]
        alg: String,
        #[arg(long)]
        kid: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let inputs = match &cli.command {
        Command::Check { policy } => vec![Some(policy.as_path())],
        Command::Eval {
            policy,
            request,
            answer,
            answer_text,
            ..
        } => vec![
            Some(policy.as_path()),
            Some(request.as_path()),
            answer.as_deref(),
            answer_text.as_deref(),
        ],
        Command::Readiness { policy, cases, .. } => vec![Some(policy.as_path()), Some(cases.as_path())],
        Command::Digest { args } => vec![Some(args.as_path())],
        Command::Approve { key, args, policy, .. } => {
            vec![Some(key.as_path()), Some(args.as_path()), policy.as_deref()]
        }
        Command::Keygen { .. } => Vec::new(),
    };
    if let Err(e) = stdin_once(&inputs) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut out = String::new();
    let code = run(cli.command, &mut out);
    emit(&out, code)
}

/// Runs a command, which leaves what it prints in `out`.
fn run(command: Command, out: &mut String) -> ExitCode {
    match command {
        Command::Check { policy } => check::run(&policy, out),
        Command::Eval {
            policy,
            request,
            now,
            json,
            answer,
            answer_text,
            answer_content_type,
        } => {
            let answer = match (answer, answer_text) {
                (Some(path), _) => Some(eval::AnswerFile::Json(path)),
                (None, Some(path)) => Some(eval::AnswerFile::Text {
                    path,
                    content_type: answer_content_type,
                }),
                (None, None) => None,
            };
            match answer {
                Some(answer) => eval::eval_answer(&policy, &request, answer, now, json, out),
                None => eval::eval(&policy, &request, now, json, out),
            }
        }
        Command::Readiness {
            policy,
            cases,
            now,
            format,
            out: file,
        } => eval::readiness(&policy, &cases, now, format == "json", file.as_deref(), out),
        Command::Digest { args } => print(approval::digest(&args, None), out),
        Command::Approve {
            key,
            sub,
            sub_iss,
            tenant,
            tool,
            args,
            approver,
            ttl,
            policy,
            iss,
            aud,
            jti,
            iat,
            now,
        } => print(
            approval::approve(approval::Approve {
                key: &key,
                policy: policy.as_deref(),
                issuer: iss,
                audience: aud,
                subject: sub,
                subject_issuer: sub_iss,
                tenant,
                tool,
                args: &args,
                approver,
                ttl,
                jti,
                iat,
                now,
            }),
            out,
        ),
        Command::Keygen { alg, kid } => print(approval::keygen(&alg, kid).map(|v| v.to_string()), out),
    }
}

/// Writes what a command printed, in one go. A reader that stops reading early
/// (`aigate check policy.json | head -1`) is no failure of the command: it keeps its exit
/// code, where `println!` would panic on the closed pipe.
fn emit(out: &str, code: ExitCode) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::from(2)
        }
        _ => code,
    }
}

/// The file argument that stands for standard input.
const STDIN: &str = "-";

/// A file argument as messages name it.
fn name(path: &Path) -> String {
    if path == Path::new(STDIN) {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a file (`-`: stdin), or says which one could not be read.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new(STDIN) {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Stdin holds one input: a command given `-` for two of its files cannot read both.
fn stdin_once(inputs: &[Option<&Path>]) -> Result<(), String> {
    if inputs.iter().flatten().filter(|p| **p == Path::new(STDIN)).count() > 1 {
        return Err("only one input can be read from stdin (-)".into());
    }
    Ok(())
}

/// Parses the JSON of a file the command was given (strictly: duplicate keys refused),
/// naming the file in any error.
fn parse_json(path: &Path, bytes: &[u8], depth: usize) -> Result<serde_json::Value, String> {
    crate::json::parse(bytes, depth).map_err(|e| match e {
        // A file, not a request body.
        crate::json::JsonError::NotUtf8 => format!("{} is not UTF-8 text (JSON is UTF-8)", name(path)),
        e => format!("{}: {e}", name(path)),
    })
}

fn print(result: Result<String, String>, out: &mut String) -> ExitCode {
    match result {
        Ok(text) => {
            out.push_str(&text);
            out.push('\n');
            ExitCode::SUCCESS
        }
        // digest, approve and keygen have no verdict to give: a failure is input they
        // cannot use (a file, a key, arguments), exit 2 as for every command.
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
