//! The `keyrot-sim` binary as the demo runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{client, send};

#[tokio::test]
async fn binary_prints_one_ready_line_and_serves_until_terminated() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrot-sim"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.starts_with(r#"{"base_url":"http://127.0.0.1:"#),
        "{line}"
    );
    let ready: Value = serde_json::from_str(&line).unwrap();
    let object = ready.as_object().unwrap();
    assert_eq!(object.len(), 6, "{line}");
    let base_url = ready["base_url"].as_str().unwrap();
    assert!(base_url.starts_with("http://127.0.0.1:"));
    assert!(
        ready["openai_admin_key"]
            .as_str()
            .unwrap()
            .starts_with("sk-admin-")
    );
    assert!(
        ready["anthropic_admin_key"]
            .as_str()
            .unwrap()
            .starts_with("sk-ant-admin01-")
    );

    for (key, prefix) in [
        ("vercel_token", "vcp_"),
        ("vercel_team_id", "team_"),
        ("render_token", "rnd_"),
    ] {
        assert!(ready[key].as_str().unwrap().starts_with(prefix), "{line}");
    }

    let (status, state) = send(client().get(format!("{base_url}/_sim/state"))).await;
    assert_eq!(status, 200);
    assert_eq!(state["openai"]["admin_key"], ready["openai_admin_key"]);
    assert_eq!(state["vercel"]["token"], ready["vercel_token"]);
    assert_eq!(state["vercel"]["team_id"], ready["vercel_team_id"]);
    assert_eq!(state["render"]["token"], ready["render_token"]);

    // SIGTERM (what the demo sends) must end it cleanly, with nothing more on stdout.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "");
}
