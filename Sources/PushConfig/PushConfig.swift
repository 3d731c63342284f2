// PushConfig
