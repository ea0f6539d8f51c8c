"""Writes sitevigil.test.yml skeleton: one firing and one quiet case per rule (annotations filled after review)."""
import yaml
I = 'instance="p1",job="sitevigil"'
T = I + ',target="sw1"'
IF = T + ',ifindex="1",ifname="ge1"'
ST = T + ',index="1",descr="/var"'
def F(kind, sev="critical"):
    return f'sitevigil_findings_open{{{I},kind="{kind}",severity="{sev}",state="open"}}', f'sitevigil_findings_open{{{I},kind="{kind}",severity="{sev}",state="acknowledged"}}'
cases = {}  # alert -> (fire series, quiet series, eval time, labels)
for a, k in [("SitevigilDeviceUnreachable","device_unreachable"),("SitevigilDeviceRebooted","device_rebooted"),
             ("SitevigilInterfaceErrors","interface_flapping"),("SitevigilStorageFilling","storage_filling"),
             ("SitevigilTonerLow","supply_low_ratio"),("SitevigilUpsProblem","ups_on_battery"),
             ("SitevigilRogueDhcp","rogue_dhcp"),("SitevigilArpSpoofing","arp_spoofing"),
             ("SitevigilScanOrFlood","port_scan"),("SitevigilForwardingLoop","forwarding_loop")]:
    o, ack = F(k)
    cases[a] = ([(o, "2x10")], [(ack, "2x10")], "5m", {"kind": k, "severity": "critical"})
cases.update({
 "SitevigilSnmpDeviceDown": ([(f'sitevigil_snmp_up{{{T},module="system"}}', "0x20")], [(f'sitevigil_snmp_up{{{T},module="system"}}', "1x20")], "10m", {"instance":"p1","target":"sw1"}),
 "SitevigilSnmpDeviceRebooted": ([(f'sitevigil_snmp_restarts_total{{{T}}}', "0x5 1x10")], [(f'sitevigil_snmp_restarts_total{{{T}}}', "0x15")], "10m", {}),
 "SitevigilSnmpPollsFailing": ([(f'sitevigil_snmp_poll_errors_total{{{T},module="if",class="timeout"}}', "0+1x40"), (f'sitevigil_snmp_up{{{T},module="if"}}', "0x40")],
                               [(f'sitevigil_snmp_poll_errors_total{{{T},module="if",class="timeout"}}', "0+1x40"), (f'sitevigil_snmp_up{{{T},module="if"}}', "1x40")], "30m", {"instance":"p1","target":"sw1","module":"if"}),
 "SitevigilInterfaceErrorsRising": ([(f'sitevigil_snmp_if_receive_errors_total{{{IF}}}', "0+600x40"), (f'sitevigil_snmp_if_transmit_errors_total{{{IF}}}', "0x40")],
                                    [(f'sitevigil_snmp_if_receive_errors_total{{{IF}}}', "0+6x40"), (f'sitevigil_snmp_if_transmit_errors_total{{{IF}}}', "0x40")], "30m", {"instance":"p1","target":"sw1","ifname":"ge1"}),
 "SitevigilInterfaceFlapping": ([(f'sitevigil_snmp_if_status_changes_total{{{IF}}}', "0+1x20")], [(f'sitevigil_snmp_if_status_changes_total{{{IF}}}', "0x20")], "15m", {}),
 "SitevigilStorageFillingUp": ([(f'sitevigil_snmp_storage_used_bytes{{{ST}}}', "860+1x600"), (f'sitevigil_snmp_storage_size_bytes{{{ST}}}', "1000x600")],
                               [(f'sitevigil_snmp_storage_used_bytes{{{ST}}}', "860x600"), (f'sitevigil_snmp_storage_size_bytes{{{ST}}}', "1000x600")], "8h", {}),
 "SitevigilTonerLowLevel": ([(f'sitevigil_snmp_printer_supply_remaining_ratio{{{T},index="1",descr="Black Toner",type="toner"}}', "0.05x60")],
                            [(f'sitevigil_snmp_printer_supply_remaining_ratio{{{T},index="1",descr="Black Toner",type="toner"}}', "0.5x60")], "45m", {}),
 "SitevigilUpsOnBattery": ([(f'sitevigil_snmp_ups_on_battery{{{T}}}', "1x10")], [(f'sitevigil_snmp_ups_on_battery{{{T}}}', "0x10")], "5m", {}),
 "SitevigilUpsRuntimeShort": ([(f'sitevigil_snmp_ups_battery_runtime_seconds{{{T}}}', "300x10")], [(f'sitevigil_snmp_ups_battery_runtime_seconds{{{T}}}', "1800x10")], "8m", {}),
 "SitevigilUpsBatteryReplace": ([(f'sitevigil_snmp_ups_battery_replace_needed{{{T}}}', "1x10")], [(f'sitevigil_snmp_ups_battery_replace_needed{{{T}}}', "0x10")], "5m", {}),
 "SitevigilProbeDown": ([(f'up{{{I}}}', "0x10")], [(f'up{{{I}}}', "1x10")], "8m", {}),
 "SitevigilProbeSilent": ([(f'up{{{I}}}', "1x20")], [(f'sitevigil_build_info{{{I},version="0.1.0"}}', "1x20")], "15m", {}),
 "SitevigilSubsystemDown": ([(f'sitevigil_subsystem_up{{{I},subsystem="capture"}}', "0x20")], [(f'sitevigil_subsystem_up{{{I},subsystem="capture"}}', "1x20")], "15m", {}),
 "SitevigilCaptureDrops": ([(f'sitevigil_capture_kernel_drops_total{{{I}}}', "0+10x40")], [(f'sitevigil_capture_kernel_drops_total{{{I}}}', "5x40")], "30m", {}),
 "SitevigilStateDatabaseFailing": ([(f'sitevigil_state_write_backlog{{{I}}}', "3x10")], [(f'sitevigil_state_write_backlog{{{I}}}', "0x10"), (f'sitevigil_state_write_failures_total{{{I}}}', "2x10")], "8m", {}),
 "SitevigilStateWritesDropped": ([(f'sitevigil_state_writes_dropped_total{{{I}}}', "0x3 5x10")], [(f'sitevigil_state_writes_dropped_total{{{I}}}', "5x10")], "8m", {}),
})
tests = []
for alert, (fire, quiet, at, _) in cases.items():
    for series, exp in ((fire, None), (quiet, [])):
        tests.append({"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
                      "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": exp if exp is not None else [{"exp_labels": {}, "exp_annotations": {}}]}]})
yaml.safe_dump({"rule_files": ["../alerts/sitevigil.rules.yml"], "evaluation_interval": "1m", "tests": tests},
               open("tests/sitevigil.test.yml", "w"), sort_keys=False, width=300)
