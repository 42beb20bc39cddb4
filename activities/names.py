"""Activity names, referenced by the orchestrators through these constants."""

RESERVE_UPSTREAM_SLOT = "reserve_upstream_slot"
CREATE_UPSTREAM_JOB = "create_upstream_job"
CHECK_UPSTREAM_JOB = "check_upstream_job"
DELETE_UPSTREAM_JOB = "delete_upstream_job"
STORE_VIDEO_ASSETS = "store_video_assets"
FAIL_JOB = "fail_job"
RELEASE_QUOTA_SLOT = "release_quota_slot"
