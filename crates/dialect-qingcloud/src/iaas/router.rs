//! Every action this dialect serves, parsed in one place.

macro_rules! actions {
    ($($name:ident),+ $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action { $($name),+ }
        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$name),+];
            pub fn parse(s: &str) -> Option<Action> {
                match s { $(stringify!($name) => Some(Action::$name),)+ _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $(Action::$name => stringify!($name)),+ }
            }
        }
    };
}

actions!(
    DescribeSnapshots,
    CreateSnapshots,
    DeleteSnapshots,
    ApplySnapshots,
    ModifySnapshotAttributes,
    CaptureInstanceFromSnapshot,
    CreateVolumeFromSnapshot,
    DescribeVolumes,
    CreateVolumes,
    DeleteVolumes,
    AttachVolumes,
    DetachVolumes,
    ResizeVolumes,
    ModifyVolumeAttributes,
    DescribeImages,
    DeleteImages,
    DescribeJobs,
    DescribeZones,
    CreateTag,
    DescribeTags,
    AttachTags,
    DetachTags,
    DeleteTags,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_and_case_matters() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(*a));
        }
        assert_eq!(Action::ALL.len(), 23);
        assert_eq!(Action::parse("describesnapshots"), None);
        assert_eq!(Action::parse("RunInstances"), None);
        assert_eq!(Action::parse(""), None);
    }
}
