"""The mssante test kit: its campaign, checks, driver actions and the reference candidate's defects."""
