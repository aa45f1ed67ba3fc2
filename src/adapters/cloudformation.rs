//! The deployed stack's outputs (CloudFormation DescribeStacks): how the CLI finds the rotator, the
//! table and the topic when no `KEYROT_*` variable names them.

use std::collections::HashMap;

use crate::adapters::aws::sdk_error;
use crate::error::{Error, Result, Transience};

/// The outputs of stack `stack`, by output key.
pub async fn stack_outputs(
    sdk: &aws_config::SdkConfig,
    stack: &str,
) -> Result<HashMap<String, String>> {
    let answer = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| sdk_error("CloudFormation", "DescribeStacks", &err))?;
    let found = answer.stacks().first().ok_or_else(|| {
        Error::external(
            "CloudFormation",
            "DescribeStacks",
            format!("stack {stack} does not exist"),
            Transience::Final,
        )
    })?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|output| {
            Some((
                output.output_key()?.to_owned(),
                output.output_value()?.to_owned(),
            ))
        })
        .collect())
}
