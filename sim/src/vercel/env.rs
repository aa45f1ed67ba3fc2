//! Project environment variables: list, create or upsert, edit, delete.
//!
//! A variable belongs to one or more targets; two variables with the same key
//! may coexist only if their targets do not overlap. `sensitive` values are
//! write-only, as on Vercel: keyrot recognises its key by the fingerprint it
//! writes into `comment` instead.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch};
use serde_json::{Map, Value, json};

use super::{
    Project, Target, Vercel, bad_request, body_object, error, parse_body, project_not_found,
};
use crate::reply::{ApiError, Reply};
use crate::state::{Shared, now_millis, random_alphanumeric};

/// Vercel's limits on the optional text fields.
const COMMENT_MAX_CHARS: usize = 500;
const GIT_BRANCH_MAX_CHARS: usize = 250;
/// The fields `PATCH` accepts; the spec forbids any other.
const EDITABLE: [&str; 7] = [
    "key",
    "target",
    "gitBranch",
    "type",
    "value",
    "customEnvironmentIds",
    "comment",
];

pub(super) struct EnvVar {
    pub(super) id: String,
    pub(super) key: String,
    pub(super) value: String,
    /// What a list without `decrypt=true` shows for an `encrypted` value: an
    /// opaque stand-in for Vercel's ciphertext, new with every value.
    sealed: String,
    pub(super) env_type: EnvType,
    pub(super) targets: Vec<Target>,
    pub(super) comment: Option<String>,
    git_branch: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnvType {
    System,
    Secret,
    Encrypted,
    Plain,
    Sensitive,
}

impl EnvType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "system" => Some(Self::System),
            "secret" => Some(Self::Secret),
            "encrypted" => Some(Self::Encrypted),
            "plain" => Some(Self::Plain),
            "sensitive" => Some(Self::Sensitive),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Secret => "secret",
            Self::Encrypted => "encrypted",
            Self::Plain => "plain",
            Self::Sensitive => "sensitive",
        }
    }
}

impl EnvVar {
    /// Whether a deployment of `target` gets this variable. Branch-specific
    /// variables only reach that branch's previews, which are not simulated.
    pub(super) fn applies_to(&self, target: Target) -> bool {
        self.git_branch.is_none() && self.targets.contains(&target)
    }

    /// Whether a variable with these coordinates would be the same variable.
    fn clashes(&self, key: &str, targets: &[Target], git_branch: Option<&str>) -> bool {
        self.key == key
            && self.git_branch.as_deref() == git_branch
            && targets.iter().any(|t| self.targets.contains(t))
    }

    fn set_value(&mut self, value: String) {
        self.value = value;
        self.sealed = seal();
    }

    /// The spec's env-var shape. `sensitive` values never leave the
    /// simulator; `encrypted` (and `secret`) ones only with `decrypt=true`.
    fn to_json(&self, user_id: &str, decrypt: bool) -> Value {
        let (value, decrypted) = match self.env_type {
            EnvType::Sensitive => ("", Some(false)),
            EnvType::Encrypted | EnvType::Secret if decrypt => (self.value.as_str(), Some(true)),
            EnvType::Encrypted | EnvType::Secret => (self.sealed.as_str(), Some(false)),
            EnvType::Plain | EnvType::System => (self.value.as_str(), None),
        };
        let mut var = json!({
            "id": self.id,
            "key": self.key,
            "value": value,
            "type": self.env_type.as_str(),
            "target": self.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "configurationId": null,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdBy": user_id,
            "updatedBy": user_id,
        });
        if let Some(decrypted) = decrypted {
            var["decrypted"] = json!(decrypted);
        }
        if let Some(comment) = &self.comment {
            var["comment"] = json!(comment);
        }
        if let Some(branch) = &self.git_branch {
            var["gitBranch"] = json!(branch);
        }
        var
    }

    /// The error for writing a variable that clashes with this one, shaped
    /// like the items of the spec's `failed` list.
    fn already_exists(&self) -> Value {
        let targets: Vec<&str> = self.targets.iter().map(|t| t.as_str()).collect();
        let mut error = json!({
            "code": "ENV_ALREADY_EXISTS",
            "message": format!(
                "A variable with the name `{}` already exists for the target {}",
                self.key,
                targets.join(", ")
            ),
            "key": self.key,
            "envVarKey": self.key,
            "envVarId": self.id,
            "target": targets,
        });
        if let Some(branch) = &self.git_branch {
            error["gitBranch"] = json!(branch);
        }
        error
    }
}

fn seal() -> String {
    random_alphanumeric(64)
}

/// One variable of a `POST` body, validated.
struct NewVar {
    key: String,
    value: String,
    env_type: EnvType,
    targets: Vec<Target>,
    comment: Option<String>,
    git_branch: Option<String>,
}

impl NewVar {
    fn parse(item: &Value) -> Result<Self, String> {
        let Value::Object(fields) = item else {
            return Err("each variable should be an object".to_owned());
        };
        let required = |name: &str| {
            fields
                .get(name)
                .ok_or_else(|| format!("missing required property `{name}`"))
        };
        custom_environments(fields.get("customEnvironmentIds"))?;
        let new = NewVar {
            key: parse_key(required("key")?)?,
            value: parse_string(required("value")?, "value")?,
            env_type: parse_type(required("type")?)?,
            targets: parse_targets(required("target")?)?,
            comment: fields.get("comment").map(parse_comment).transpose()?,
            git_branch: parse_git_branch(fields.get("gitBranch"))?,
        };
        check_branch_targets(new.git_branch.as_deref(), &new.targets)?;
        Ok(new)
    }
}

/// A `PATCH` body: every field optional.
struct Edit {
    key: Option<String>,
    value: Option<String>,
    env_type: Option<EnvType>,
    targets: Option<Vec<Target>>,
    comment: Option<String>,
    /// `Some(None)` clears the branch.
    git_branch: Option<Option<String>>,
}

impl Edit {
    fn parse(fields: &Map<String, Value>) -> Result<Self, String> {
        if let Some(extra) = fields.keys().find(|k| !EDITABLE.contains(&k.as_str())) {
            return Err(format!("should NOT have additional property `{extra}`"));
        }
        custom_environments(fields.get("customEnvironmentIds"))?;
        Ok(Edit {
            key: fields.get("key").map(parse_key).transpose()?,
            value: fields
                .get("value")
                .map(|v| parse_string(v, "value"))
                .transpose()?,
            env_type: fields.get("type").map(parse_type).transpose()?,
            targets: fields.get("target").map(parse_targets).transpose()?,
            comment: fields.get("comment").map(parse_comment).transpose()?,
            git_branch: match fields.get("gitBranch") {
                None => None,
                some => Some(parse_git_branch(some)?),
            },
        })
    }
}

fn parse_string(value: &Value, name: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{name}` should be a string"))
}

/// Vercel's rule for names: letters, digits and underscores, not starting with a digit.
fn parse_key(value: &Value) -> Result<String, String> {
    let key = parse_string(value, "key")?;
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(key)
    } else {
        Err(format!(
            "the name `{key}` is invalid: use letters, digits and underscores, not starting with a digit"
        ))
    }
}

fn parse_type(value: &Value) -> Result<EnvType, String> {
    value.as_str().and_then(EnvType::parse).ok_or_else(|| {
        "`type` should be one of \"system\", \"secret\", \"encrypted\", \"plain\", \"sensitive\""
            .to_owned()
    })
}

/// A non-empty list of known targets; repeats are dropped.
fn parse_targets(value: &Value) -> Result<Vec<Target>, String> {
    const EXPECTED: &str =
        "`target` should be a non-empty array of \"production\", \"preview\", \"development\"";
    let items = value.as_array().ok_or(EXPECTED)?;
    let mut targets = Vec::new();
    for item in items {
        let target = item.as_str().and_then(Target::parse).ok_or(EXPECTED)?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    Ok(targets)
}

fn parse_comment(value: &Value) -> Result<String, String> {
    let comment = parse_string(value, "comment")?;
    if comment.chars().count() > COMMENT_MAX_CHARS {
        return Err(format!(
            "`comment` should be at most {COMMENT_MAX_CHARS} characters"
        ));
    }
    Ok(comment)
}

/// Absent and `null` both mean "no branch".
fn parse_git_branch(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let branch = parse_string(value, "gitBranch")?;
            if branch.chars().count() > GIT_BRANCH_MAX_CHARS {
                return Err(format!(
                    "`gitBranch` should be at most {GIT_BRANCH_MAX_CHARS} characters"
                ));
            }
            Ok(Some(branch))
        }
    }
}

fn check_branch_targets(git_branch: Option<&str>, targets: &[Target]) -> Result<(), String> {
    if git_branch.is_some() && targets != [Target::Preview] {
        return Err("a variable with a `gitBranch` must have target=preview only".to_owned());
    }
    Ok(())
}

/// The spec allows custom environments instead of targets; the simulator
/// has none, so asking for one is refused rather than silently ignored.
fn custom_environments(value: Option<&Value>) -> Result<(), String> {
    match value {
        None => Ok(()),
        Some(Value::Array(ids)) if ids.is_empty() => Ok(()),
        Some(Value::Array(_)) => {
            Err("custom environments (`customEnvironmentIds`) are not simulated".to_owned())
        }
        Some(_) => Err("`customEnvironmentIds` should be an array of strings".to_owned()),
    }
}

impl Project {
    /// Creates the variable, or with `upsert` rewrites the one variable it
    /// clashes with, keeping that variable's id. Returns the variable's index,
    /// or the error object for the `failed` list.
    fn write_env(&mut self, new: NewVar, upsert: bool) -> Result<usize, Value> {
        let clashing: Vec<usize> = self
            .env
            .iter()
            .enumerate()
            .filter(|(_, var)| var.clashes(&new.key, &new.targets, new.git_branch.as_deref()))
            .map(|(i, _)| i)
            .collect();
        let now = now_millis();
        // Creation times are unique within a project, as the pages of the list (`until`) need.
        let created = self
            .env
            .iter()
            .map(|var| var.created_at + 1)
            .max()
            .map_or(now, |next| next.max(now));
        match (clashing.as_slice(), upsert) {
            ([], _) => {
                self.env.push(EnvVar {
                    id: random_alphanumeric(16),
                    key: new.key,
                    value: new.value,
                    sealed: seal(),
                    env_type: new.env_type,
                    targets: new.targets,
                    comment: new.comment,
                    git_branch: new.git_branch,
                    created_at: created,
                    updated_at: created,
                });
                Ok(self.env.len() - 1)
            }
            (&[index], true) => {
                let var = &mut self.env[index];
                var.set_value(new.value);
                var.env_type = new.env_type;
                var.targets = new.targets;
                // An upsert without a comment leaves the old one, like an edit would.
                if new.comment.is_some() {
                    var.comment = new.comment;
                }
                var.updated_at = now;
                Ok(index)
            }
            (&[index], false) => Err(self.env[index].already_exists()),
            // Which of several variables to overwrite would be a guess; Vercel refuses too.
            (&[first, ..], _) => {
                let mut error = self.env[first].already_exists();
                error["message"] = json!(format!(
                    "The variable `{}` overlaps {} existing variables; edit or delete them first",
                    new.key,
                    clashing.len()
                ));
                Err(error)
            }
        }
    }
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v10/projects/{id_or_name}/env",
            get(list_env).post(create_env),
        )
        .route(
            "/v9/projects/{id_or_name}/env/{id}",
            patch(edit_env).delete(delete_env),
        )
}

async fn list_env(
    State(shared): State<Arc<Shared>>,
    Path(id_or_name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let vercel = shared.vercel();
    let query = vercel.authorize(&headers, query)?;
    let decrypt = match query.get("decrypt").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_request(&format!(
                "Invalid request: `decrypt` should be \"true\" or \"false\", got \"{other}\"."
            )));
        }
    };
    // Not in the spec's parameter list, but Vercel (and keyrot's demo) filter by it.
    let target = match query.get("target") {
        None => None,
        Some(raw) => Some(Target::parse(raw).ok_or_else(|| {
            bad_request(&format!(
                "Invalid request: `target` should be \"production\", \"preview\" or \"development\", got \"{raw}\"."
            ))
        })?),
    };
    let branch = query.get("gitBranch");
    let until = match query.get("until") {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            bad_request(&format!(
                "Invalid request: `until` should be a timestamp in milliseconds, got \"{raw}\"."
            ))
        })?),
    };
    let project = vercel.project(&id_or_name).ok_or_else(project_not_found)?;
    let matching: Vec<&EnvVar> = project
        .env
        .iter()
        .filter(|var| target.is_none_or(|t| var.targets.contains(&t)))
        .filter(|var| {
            branch.is_none_or(|b| var.git_branch.is_none() || var.git_branch.as_ref() == Some(b))
        })
        .collect();
    let json = |vars: &[&EnvVar]| -> Vec<Value> {
        vars.iter()
            .map(|var| var.to_json(&vercel.user_id, decrypt))
            .collect()
    };
    if matching.len() <= ENV_PAGE && until.is_none() {
        // `{envs}` alone: the spec's 200 is a oneOf in which `{envs, pagination}`
        // would match two branches, so it could never validate.
        return Ok(Json(json!({ "envs": json(&matching) })));
    }
    // A long list comes in pages, newest first; `until=<next>` asks for the older ones.
    let mut older: Vec<&EnvVar> = matching
        .into_iter()
        .filter(|var| until.is_none_or(|until| var.created_at < until))
        .collect();
    older.sort_by_key(|var| std::cmp::Reverse(var.created_at));
    let page = &older[..older.len().min(ENV_PAGE)];
    let next = (older.len() > page.len())
        .then(|| page.last().map(|var| var.created_at))
        .flatten();
    Ok(Json(json!({
        "envs": json(page),
        "pagination": { "count": page.len(), "next": next, "prev": null },
    })))
}

/// How many variables one page of the list holds.
const ENV_PAGE: usize = 50;

async fn create_env(
    State(shared): State<Arc<Shared>>,
    Path(id_or_name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut vercel = shared.vercel();
    let query = vercel.authorize(&headers, query)?;
    let upsert = query.get("upsert").is_some_and(|u| u == "true");
    let index = vercel
        .project_index(&id_or_name)
        .ok_or_else(project_not_found)?;
    let body = parse_body(&body)?;
    let vercel = &mut *vercel;
    let project = &mut vercel.projects[index];
    let user = vercel.user_id.as_str();

    // Both forms are validated whole before anything is written, so a bad
    // item never leaves half a batch behind.
    let created = match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(bad_request(
                    "Invalid request: the array of variables is empty.",
                ));
            }
            let new: Vec<NewVar> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    NewVar::parse(item)
                        .map_err(|m| bad_request(&format!("Invalid request: item {i}: {m}.")))
                })
                .collect::<Result<_, _>>()?;
            let mut created = Vec::new();
            let mut failed = Vec::new();
            for var in new {
                match project.write_env(var, upsert) {
                    Ok(i) => created.push(project.env[i].to_json(user, false)),
                    Err(error) => failed.push(json!({ "error": error })),
                }
            }
            json!({ "created": created, "failed": failed })
        }
        single => {
            let new = NewVar::parse(&single)
                .map_err(|m| bad_request(&format!("Invalid request: {m}.")))?;
            let i = project.write_env(new, upsert).map_err(|error| ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "error": error }),
            })?;
            json!({ "created": project.env[i].to_json(user, false), "failed": [] })
        }
    };
    Ok((StatusCode::CREATED, Json(created)))
}

async fn edit_env(
    State(shared): State<Arc<Shared>>,
    Path((id_or_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let mut vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let index = vercel
        .project_index(&id_or_name)
        .ok_or_else(project_not_found)?;
    let fields = body_object(parse_body(&body)?)?;
    let edit = Edit::parse(&fields).map_err(|m| bad_request(&format!("Invalid request: {m}.")))?;
    let vercel = &mut *vercel;
    let project = &mut vercel.projects[index];
    let position = project
        .env
        .iter()
        .position(|var| var.id == id)
        .ok_or_else(env_not_found)?;

    let current = &project.env[position];
    let key = edit.key.clone().unwrap_or_else(|| current.key.clone());
    let targets = edit
        .targets
        .clone()
        .unwrap_or_else(|| current.targets.clone());
    let git_branch = edit
        .git_branch
        .clone()
        .unwrap_or_else(|| current.git_branch.clone());
    check_branch_targets(git_branch.as_deref(), &targets)
        .map_err(|m| bad_request(&format!("Invalid request: {m}.")))?;
    let clash = project
        .env
        .iter()
        .enumerate()
        .find(|(i, var)| *i != position && var.clashes(&key, &targets, git_branch.as_deref()));
    if let Some((_, other)) = clash {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": other.already_exists() }),
        });
    }

    let var = &mut project.env[position];
    var.key = key;
    var.targets = targets;
    var.git_branch = git_branch;
    if let Some(value) = edit.value {
        var.set_value(value);
    }
    if let Some(env_type) = edit.env_type {
        var.env_type = env_type;
    }
    if let Some(comment) = edit.comment {
        var.comment = Some(comment);
    }
    var.updated_at = now_millis();
    Ok(Json(var.to_json(&vercel.user_id, false)))
}

async fn delete_env(
    State(shared): State<Arc<Shared>>,
    Path((id_or_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    let mut vercel = shared.vercel();
    vercel.authorize(&headers, query)?;
    let index = vercel
        .project_index(&id_or_name)
        .ok_or_else(project_not_found)?;
    let project = &mut vercel.projects[index];
    let position = project
        .env
        .iter()
        .position(|var| var.id == id)
        .ok_or_else(env_not_found)?;
    let removed = project.env.remove(position);
    Ok(Json(removed.to_json(&vercel.user_id, false)))
}

fn env_not_found() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Environment Variable not found",
    )
}

impl Vercel {
    /// A plain variable for every environment, as a person adds one in the dashboard.
    pub(crate) fn add_plain_env(&mut self, project: &str, key: &str, value: &str) -> bool {
        let Some(index) = self.project_index(project) else {
            return false;
        };
        let new = NewVar {
            key: key.to_owned(),
            value: value.to_owned(),
            env_type: EnvType::Plain,
            targets: vec![Target::Production, Target::Preview, Target::Development],
            comment: None,
            git_branch: None,
        };
        self.projects[index].write_env(new, false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_var(item: Value) -> Result<NewVar, String> {
        NewVar::parse(&item)
    }

    #[test]
    fn new_variables_are_validated_like_the_spec_says() {
        let ok = new_var(json!({"key":"API_KEY","value":"v","type":"sensitive","target":["production","production","preview"]})).unwrap();
        assert_eq!(ok.targets, [Target::Production, Target::Preview]);
        for bad in [
            json!({"value":"v","type":"plain","target":["production"]}),
            json!({"key":"1KEY","value":"v","type":"plain","target":["production"]}),
            json!({"key":"K","value":5,"type":"plain","target":["production"]}),
            json!({"key":"K","value":"v","type":"public","target":["production"]}),
            json!({"key":"K","value":"v","type":"plain","target":[]}),
            json!({"key":"K","value":"v","type":"plain","target":"production"}),
            json!({"key":"K","value":"v","type":"plain","target":["staging"]}),
            json!({"key":"K","value":"v","type":"plain","target":["production"],"comment":"x".repeat(501)}),
            json!({"key":"K","value":"v","type":"plain","target":["production"],"gitBranch":"main"}),
            json!({"key":"K","value":"v","type":"plain","customEnvironmentIds":["env_1"]}),
        ] {
            assert!(new_var(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn sensitive_values_are_never_shown_and_encrypted_ones_only_decrypted() {
        let mut project = Project {
            id: "prj_1".into(),
            name: "web".into(),
            env: Vec::new(),
            production: None,
            auto_assign: true,
        };
        for (key, env_type) in [("A", "sensitive"), ("B", "encrypted"), ("C", "plain")] {
            let new = new_var(
                json!({"key":key,"value":"secret-value","type":env_type,"target":["production"]}),
            )
            .unwrap();
            project.write_env(new, false).unwrap();
        }
        let shown = |decrypt: bool| -> Vec<Value> {
            project
                .env
                .iter()
                .map(|v| v.to_json("u", decrypt)["value"].clone())
                .collect()
        };
        let plain = shown(false);
        assert_eq!(plain[0], "");
        assert_ne!(plain[1], "secret-value");
        assert_eq!(plain[2], "secret-value");
        assert_eq!(
            shown(true),
            [json!(""), json!("secret-value"), json!("secret-value")]
        );
    }
}
