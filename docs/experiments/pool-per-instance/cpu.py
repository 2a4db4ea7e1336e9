# Each process kind's user and system time (PostgreSQL's with its reaped children) and context
# switches (every thread's), summed by name: postgres, server*, nats-server. In 10 ms ticks.
import os, json, sys
out={}
for p in os.listdir('/proc'):
    if not p.isdigit(): continue
    try:
        s=open(f'/proc/{p}/stat').read()
        name=s[s.index('(')+1:s.rindex(')')]
        if name.startswith('server'): name='server'
        if name not in ('postgres','server','nats-server'): continue
        f=s[s.rindex(')')+2:].split()
        u=int(f[11]); st=int(f[12])
        if name=='postgres': u+=int(f[13]); st+=int(f[14])
        cs=0
        for line in open(f'/proc/{p}/status'):
            if 'ctxt_switches' in line: cs+=int(line.split()[1])
        # threads' switches
        for t in os.listdir(f'/proc/{p}/task'):
            if t==p: continue
            for line in open(f'/proc/{p}/task/{t}/status'):
                if 'ctxt_switches' in line: cs+=int(line.split()[1])
        d=out.setdefault(name,[0,0,0]); d[0]+=u; d[1]+=st; d[2]+=cs
    except Exception: pass
print(json.dumps(out))
