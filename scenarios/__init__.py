"""The shipped campaigns, one folder per national service (``insi/campaign.yaml``...)."""
