//! Every Tencent v2 action this dialect serves, parsed in one place, and the one path they share.

/// The only path of the v2 API; every action is a parameter (dialects.md §5.2).
pub const PATH: &str = "/v2/index.php";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    DescribeSnapshots,
    CreateSnapshot,
    DeleteSnapshot,
    ModifySnapshot,
    ApplySnapshot,
    DescribeCbsStorages,
    CreateCbsStorages,
}

impl Endpoint {
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::DescribeSnapshots,
        Endpoint::CreateSnapshot,
        Endpoint::DeleteSnapshot,
        Endpoint::ModifySnapshot,
        Endpoint::ApplySnapshot,
        Endpoint::DescribeCbsStorages,
        Endpoint::CreateCbsStorages,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::DescribeSnapshots => "DescribeSnapshots",
            Endpoint::CreateSnapshot => "CreateSnapshot",
            Endpoint::DeleteSnapshot => "DeleteSnapshot",
            Endpoint::ModifySnapshot => "ModifySnapshot",
            Endpoint::ApplySnapshot => "ApplySnapshot",
            Endpoint::DescribeCbsStorages => "DescribeCbsStorages",
            Endpoint::CreateCbsStorages => "CreateCbsStorages",
        }
    }

    /// The `Action` parameter, exactly as the SDK sends it (first letter upper-cased by the SDK;
    /// the match is case-sensitive, as the vendor's is).
    pub fn from_action(action: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.name() == action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! test_cases {
        ($($action:literal => $want:expr,)*) => {
            $( assert_eq!(Endpoint::from_action($action), $want, "action {}", $action); )*
        };
    }

    #[test]
    fn actions() {
        test_cases! {
            "DescribeSnapshots" => Some(Endpoint::DescribeSnapshots),
            "CreateSnapshot" => Some(Endpoint::CreateSnapshot),
            "DeleteSnapshot" => Some(Endpoint::DeleteSnapshot),
            "ModifySnapshot" => Some(Endpoint::ModifySnapshot),
            "ApplySnapshot" => Some(Endpoint::ApplySnapshot),
            "DescribeCbsStorages" => Some(Endpoint::DescribeCbsStorages),
            "CreateCbsStorages" => Some(Endpoint::CreateCbsStorages),
            "describeSnapshots" => None,
            "DescribeSnapshot" => None,
            "CreateSnapshots" => None,
            "" => None,
        }
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_action(e.name()), Some(*e));
        }
    }
}
