import { renderAlertRules } from '../../monitoring/alert-rules.ts';
import { resolveRuleOptions, type RuleFlags } from '../../monitoring/rule-options.ts';

/**
 * `warden monitoring rules`: prints the Prometheus alerting rules (YAML) for the requirements'
 * alert table and Warden's data-protection alerts, thresholds from the flags.
 */
export function monitoringRulesCommand(flags: RuleFlags): number {
  process.stdout.write(renderAlertRules(resolveRuleOptions(flags)));
  return 0;
}
