//! Every function of the template is exercised by this tier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lambda_emu::Template;

/// The functions the emulator tests invoke, each in its own test file.
const COVERED: &[&str] = &[
    "TokenMintFunction",
    "ServerTokenMintFunction",
    "JwksFunction",
    "KeyRotationFunction",
    "IssueFunction",
    "StatusPollerFunction",
    "CallbackReceiverFunction",
];

#[test]
fn every_function_of_the_template_is_invoked_by_an_emulator_test() {
    let root = lambda_emu::workspace_root();
    let template = Template::load(&root.join("template.yaml")).unwrap();
    let functions: Vec<String> = template
        .functions()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for f in &functions {
        assert!(
            COVERED.contains(&f.as_str()),
            "{f} is in the template but no emulator test invokes it"
        );
    }
    for c in COVERED {
        assert!(
            functions.iter().any(|f| f == c),
            "{c} is no longer in the template"
        );
    }
}
