"""The push journal: the registry's notifications (who pushed or deleted what, when, from where),
kept in the reports bucket, so history can say who moved a tag."""
