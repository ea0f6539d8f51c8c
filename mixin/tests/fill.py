"""Fills exp_labels/exp_annotations of the firing cases from promtool's output, for a human to review."""
import re, subprocess, yaml
out = subprocess.run(["promtool", "test", "rules", "tests/sitevigil.test.yml"], capture_output=True, text=True); out = out.stdout + out.stderr
doc = yaml.safe_load(open("tests/sitevigil.test.yml"))
kv = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
def parse(s): return {k: v.encode().decode("unicode_escape") for k, v in kv.findall(s)}
got = {}
for m in re.finditer(r'alertname: (\w+), time: (\w+),.*?got:\[\s*0:\s*Labels:\{(.*?)\}\s*Annotations:\{(.*?)\}\n', out, re.S):
    got[m.group(1)] = (parse(m.group(3)), parse(m.group(4)))
for t in doc["tests"]:
    a = t["alert_rule_test"][0]
    if a["exp_alerts"] and a["alertname"] in got:
        labels, ann = got[a["alertname"]]
        labels.pop("alertname")
        a["exp_alerts"] = [{"exp_labels": labels, "exp_annotations": ann}]
yaml.safe_dump(doc, open("tests/sitevigil.test.yml", "w"), sort_keys=False, width=400)
