//! Rotations with a Vercel and a Render target against moto and the simulator.

use crate::support::{World, assert_no_key};

#[tokio::test]
async fn an_openai_key_reaches_vercel_and_render_and_is_live_before_finish_secret() {
    let world = World::new().await;
    let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    world
        .step("createSecret", &name, &token)
        .await
        .expect("createSecret");
    world
        .step("setSecret", &name, &token)
        .await
        .expect("setSecret");
    let new_key = world
        .moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let env = world.sim.vercel_env(&vercel);
    assert_eq!(env.len(), 1, "one variable, upserted in place: {env:?}");
    assert_eq!(env[0].value, new_key);
    assert_eq!(
        (env[0].env_type.as_str(), env[0].targets.clone()),
        (
            "sensitive",
            vec!["production".to_owned(), "preview".to_owned()]
        )
    );
    assert!(
        env[0]
            .comment
            .as_deref()
            .is_some_and(|c| c.starts_with("keyrot:")),
        "fingerprint in the comment"
    );
    assert_eq!(
        world
            .sim
            .render_env_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(new_key.as_str())
    );

    // A repeated setSecret makes no second change.
    let (deployments, deploys) = (
        world.sim.vercel_deployments(&vercel).len(),
        world.sim.render_deploys(&render).len(),
    );
    let writes = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .count();
    world
        .step("setSecret", &name, &token)
        .await
        .expect("setSecret again");
    assert_eq!(world.sim.vercel_deployments(&vercel).len(), deployments);
    assert_eq!(world.sim.render_deploys(&render).len(), deploys);
    let writes_after = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .count();
    assert_eq!(writes_after, writes, "no write at all");

    world
        .step("testSecret", &name, &token)
        .await
        .expect("testSecret waits for the redeploys");
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(new_key.as_str())
    );
    assert_eq!(
        world
            .sim
            .render_served_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(new_key.as_str())
    );
    assert_eq!(
        world.moto.version_of(&name, "AWSPENDING").await.as_deref(),
        Some(token.as_str()),
        "READY before finishSecret"
    );
    world
        .step("finishSecret", &name, &token)
        .await
        .expect("finishSecret");
    assert_eq!(world.current_key(&name).await, new_key);
    assert!(
        world.sim.openai_key_works(&first_key),
        "old key alive through the grace period"
    );

    let items = format!("{:?}", world.moto.items(&name).await);
    let logs = crate::support::captured_logs();
    for key in [
        &first_key,
        &new_key,
        &world.sim.vercel_token(),
        &world.sim.render_token(),
    ] {
        assert_no_key(&items, key, "audit items");
        assert_no_key(&logs, key, "the log lines");
    }
}

#[tokio::test]
async fn a_failed_deployment_rolls_every_target_back_and_keeps_awscurrent() {
    let world = World::new().await;
    let (name, first_key, vercel, render) = world.openai_secret_with_targets(&[]).await;
    // The targets serve the first key before the rotation.
    let token = world.moto.rotate_secret(&name, true).await;
    world.sim.vercel_fail_next_deployments(1);
    for step in ["createSecret", "setSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    let err = world
        .step("testSecret", &name, &token)
        .await
        .expect_err("the Vercel redeploy fails");
    assert!(err.contains("ERROR"), "{err}");
    assert_eq!(
        world.current_key(&name).await,
        first_key,
        "AWSCURRENT never moved"
    );
    let env = world.sim.vercel_env(&vercel);
    assert_eq!(
        env[0].value, first_key,
        "Vercel holds the current key again"
    );
    assert_eq!(
        world
            .sim
            .render_env_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(first_key.as_str())
    );
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(first_key.as_str())
    );
    assert_eq!(
        world
            .sim
            .render_served_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(first_key.as_str())
    );
    let trail = world.moto.audit_trail(&name).await;
    assert!(
        trail.contains(&("rollback".to_owned(), "succeeded".to_owned())),
        "{trail:?}"
    );

    // Secrets Manager retries the rotation, and this time the deployment works.
    for step in ["setSecret", "testSecret", "finishSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("retry {step}: {err}"));
    }
    let new_key = world.current_key(&name).await;
    assert_ne!(new_key, first_key);
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(new_key.as_str())
    );
}

#[tokio::test]
async fn a_render_deploy_replaced_by_a_later_one_counts_as_reached() {
    let world = World::new().await;
    let (name, _, _, render) = world.openai_secret_with_targets(&[]).await;
    let token = world.moto.rotate_secret(&name, true).await;
    for step in ["createSecret", "setSecret"] {
        world
            .step(step, &name, &token)
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
    }
    // Someone pushes to git: Render deploys again, and keyrot's deploy is deactivated by the new one,
    // which carries the variable keyrot set.
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/v1/services/{render}/deploys",
            world.sim.render_base_url()
        ))
        .bearer_auth(world.sim.render_token())
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("deploy");
    assert!(answer.status().is_success(), "{}", answer.status());
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses = world
            .sim
            .render_deploys(&render)
            .into_iter()
            .map(|(_, status)| status)
            .collect();
        if statuses.iter().filter(|s| *s == "live").count() == 1
            && !statuses.iter().any(|s| s == "build_in_progress")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        statuses.iter().any(|s| s == "deactivated"),
        "keyrot's deploy was replaced: {statuses:?}"
    );
    world
        .step("testSecret", &name, &token)
        .await
        .expect("the replacing deploy serves the new key, so testSecret passes");
    let pending = world
        .moto
        .value(&name, "AWSPENDING", Some(&token))
        .await
        .expect("pending")["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        world
            .sim
            .render_served_value(&render, "OPENAI_API_KEY")
            .as_deref(),
        Some(pending.as_str())
    );
}

#[tokio::test]
async fn a_vercel_environment_holding_a_key_holds_the_target_though_the_others_differ() {
    use keyrot::domain::keys::fingerprint;
    use keyrot::domain::targets::{TargetSpec, VercelTarget};
    use keyrot::ports::Target;
    use secrecy::SecretString;

    let world = World::new().await;
    let project = world.sim.vercel_create_project("mixed");
    let token_secret = world.admin_secret(&world.sim.vercel_token()).await;
    let (old, new) = (
        SecretString::from("sk-old-0000000000000000000000000000".to_owned()),
        SecretString::from("sk-new-1111111111111111111111111111".to_owned()),
    );
    // Production and preview hold the key in two variables, set apart (by hand, or by a tool).
    for (environment, key) in [("production", &new), ("preview", &old)] {
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/v10/projects/{project}/env",
                world.sim.vercel_base_url()
            ))
            .query(&[("teamId", world.sim.vercel_team_id())])
            .bearer_auth(world.sim.vercel_token())
            .json(&serde_json::json!({"key": "OPENAI_API_KEY", "value": secrecy::ExposeSecret::expose_secret(key),
                "type": "encrypted", "target": [environment], "comment": format!("keyrot:{}", fingerprint(key))}))
            .send()
            .await
            .expect("create variable");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    let target = TargetSpec::Vercel(VercelTarget {
        project,
        team_id: Some(world.sim.vercel_team_id()),
        env_key: "OPENAI_API_KEY".into(),
        environments: vec!["production".into(), "preview".into()],
        sensitive: false,
        redeploy: true,
        restart_within_hours: None,
        token_secret,
    });
    let targets = &world.ports.targets;
    assert_eq!(
        targets
            .held_fingerprint("it/mixed", &target)
            .await
            .expect("read"),
        None,
        "no one key for the whole target"
    );
    for (key, held) in [(&old, true), (&new, true)] {
        assert_eq!(
            targets
                .holds("it/mixed", &target, &fingerprint(key))
                .await
                .expect("read"),
            held
        );
    }
    assert!(
        !targets
            .holds("it/mixed", &target, "000000000000")
            .await
            .expect("read")
    );
}

/// After an Instant Rollback, Vercel's production domains serve an older deployment and new ones no
/// longer take them. keyrot rebuilds what the domains serve (not the latest READY deployment, the code
/// the team rolled back from), and counts the target ready only once the domains serve the rebuild,
/// promoting it, since nothing else will.
#[tokio::test]
async fn after_an_instant_rollback_the_served_code_is_rebuilt_and_serves_the_new_key() {
    let world = World::new().await;
    let (name, _, vercel, _) = world.openai_secret_with_targets(&[]).await;
    let rolled_back_to = world
        .sim
        .vercel_production_deployment(&vercel)
        .expect("the first deployment");
    world.rotate(&name).await;
    let newer = world
        .sim
        .vercel_production_deployment(&vercel)
        .expect("served");
    assert_ne!(newer, rolled_back_to);
    assert!(world.sim.vercel_instant_rollback(&vercel, &rolled_back_to));
    let commit_of = |id: &str| {
        world
            .sim
            .vercel_deployments(&vercel)
            .into_iter()
            .find(|d| d.id == id)
            .map(|d| d.commit)
    };

    world.rotate(&name).await;
    let current = world.current_key(&name).await;
    let served = world
        .sim
        .vercel_production_deployment(&vercel)
        .expect("served");
    assert_ne!(served, rolled_back_to, "the rebuild serves");
    assert_eq!(
        commit_of(&served),
        commit_of(&rolled_back_to),
        "the code the domains served was rebuilt, not the code rolled back from"
    );
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(current.as_str())
    );
}

/// Vercel lists a project's variables in pages. A project where others added many variables after
/// keyrot's has keyrot's on a later page: without following the pages, keyrot would not see that its
/// variable holds the new key, and testSecret would fail the rotation.
#[tokio::test]
async fn a_vercel_variable_on_a_later_page_of_the_list_is_found() {
    let world = World::new().await;
    let (name, _, vercel, _) = world.openai_secret_with_targets(&[]).await;
    world.rotate(&name).await;
    for n in 0..60 {
        assert!(
            world
                .sim
                .vercel_add_plain_env(&vercel, &format!("OTHER_{n}"), "x")
        );
    }
    world.rotate(&name).await;
    let current = world.current_key(&name).await;
    assert_eq!(
        world
            .sim
            .vercel_served_value(&vercel, "production", "OPENAI_API_KEY")
            .as_deref(),
        Some(current.as_str())
    );
    let pages = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/env"))
        .count();
    assert!(pages > 2, "the list was read page by page: {pages} GETs");
}
