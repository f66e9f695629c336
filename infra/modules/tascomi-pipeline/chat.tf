# Alarms in a chat channel as well as by email, optional:
#   - Slack or Microsoft Teams through AWS Chatbot (the workspace or team must first be
#     authorised once in the AWS Chatbot console; that step has no API), subscribed to the topic;
#   - any incoming webhook that takes {"text": "..."} (Google Chat, the council's old pipeline's
#     channel; Slack and Teams workflows too) through an EventBridge API destination: no Lambda.

resource "aws_iam_role" "chatbot" {
  count = var.chat_slack == null && var.chat_teams == null ? 0 : 1

  name               = "${local.name}-chatbot"
  description        = "AWS Chatbot: posts the pipeline's alarms (no permissions: notifications only)"
  assume_role_policy = data.aws_iam_policy_document.assume["chatbot"].json
}

resource "aws_chatbot_slack_channel_configuration" "alarms" {
  count = var.chat_slack == null ? 0 : 1

  configuration_name    = "${local.name}-alarms"
  iam_role_arn          = aws_iam_role.chatbot[0].arn
  slack_team_id         = var.chat_slack.workspace_id
  slack_channel_id      = var.chat_slack.channel_id
  sns_topic_arns        = [local.alarm_topic_arn]
  guardrail_policy_arns = ["arn:${local.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"]
}

resource "aws_chatbot_teams_channel_configuration" "alarms" {
  count = var.chat_teams == null ? 0 : 1

  configuration_name    = "${local.name}-alarms"
  iam_role_arn          = aws_iam_role.chatbot[0].arn
  tenant_id             = var.chat_teams.tenant_id
  team_id               = var.chat_teams.team_id
  channel_id            = var.chat_teams.channel_id
  sns_topic_arns        = [local.alarm_topic_arn]
  guardrail_policy_arns = ["arn:${local.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"]
}

# --- A plain webhook ------------------------------------------------------------------------------

locals {
  # Whether a webhook is set is not secret; the URL is (sensitive).
  chat_webhook = nonsensitive(var.chat_webhook_url != null)
}

# The webhook's key is in its URL (Google Chat), so the connection's own credential is a
# placeholder header; EventBridge keeps it in a Secrets Manager secret it manages.
resource "aws_cloudwatch_event_connection" "chat" {
  count = local.chat_webhook ? 1 : 0

  name               = "${local.name}-chat"
  description        = "Chat webhook of the Tascomi pipeline alarms"
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = "X-Tascomi-Alarms"
      value = "webhook-key-is-in-the-url"
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "chat" {
  count = local.chat_webhook ? 1 : 0

  name                             = "${local.name}-chat"
  connection_arn                   = aws_cloudwatch_event_connection.chat[0].arn
  invocation_endpoint              = var.chat_webhook_url
  http_method                      = "POST"
  invocation_rate_limit_per_second = 1
}

# Every state change of this deployment's alarms (into ALARM and back to OK).
resource "aws_cloudwatch_event_rule" "alarm_state_change" {
  count = local.chat_webhook ? 1 : 0

  name        = "${local.name}-alarm-to-chat"
  description = "Tascomi pipeline alarm state changes, to the chat webhook"
  event_pattern = jsonencode({
    source        = ["aws.cloudwatch"]
    "detail-type" = ["CloudWatch Alarm State Change"]
    detail = {
      alarmName = [{ prefix = "${local.name}-" }]
      state     = { value = ["ALARM", "OK"] }
    }
  })
}

resource "aws_cloudwatch_event_target" "chat" {
  count = local.chat_webhook ? 1 : 0

  rule      = aws_cloudwatch_event_rule.alarm_state_change[0].name
  target_id = "chat-webhook"
  arn       = aws_cloudwatch_event_api_destination.chat[0].arn
  role_arn  = aws_iam_role.chat_webhook[0].arn

  input_transformer {
    input_paths = {
      alarm  = "$.detail.alarmName"
      state  = "$.detail.state.value"
      reason = "$.detail.state.reason"
    }
    input_template = "{\"text\": \"<state>: <alarm>. <reason>\"}"
  }
}

resource "aws_iam_role" "chat_webhook" {
  count = local.chat_webhook ? 1 : 0

  name               = "${local.name}-chat-webhook"
  description        = "EventBridge: posts the pipeline's alarms to the chat webhook"
  assume_role_policy = data.aws_iam_policy_document.assume["events"].json
}

data "aws_iam_policy_document" "chat_webhook" {
  count = local.chat_webhook ? 1 : 0

  statement {
    sid       = "InvokeChatWebhook"
    actions   = ["events:InvokeApiDestination"]
    resources = [aws_cloudwatch_event_api_destination.chat[0].arn]
  }
}

resource "aws_iam_role_policy" "chat_webhook" {
  count = local.chat_webhook ? 1 : 0

  name   = "invoke-chat-webhook"
  role   = aws_iam_role.chat_webhook[0].id
  policy = data.aws_iam_policy_document.chat_webhook[0].json
}
