import sys, os, json, struct, hashlib
import numpy as np
import tensorflow as tf

root = sys.argv[1]
out_path = sys.argv[2]
files = []
for dp, dn, fn in os.walk(root):
    for f in fn:
        if f.endswith('.tfrec'):
            files.append(os.path.relpath(os.path.join(dp, f), root))
files.sort()
result = {}
for rel in files:
    recs = []
    for raw in tf.data.TFRecordDataset(os.path.join(root, rel)):
        ex = tf.train.Example.FromString(raw.numpy())
        d = {}
        for key, feat in sorted(ex.features.feature.items()):
            kind = feat.WhichOneof('kind')
            if kind == 'int64_list':
                d[key] = {'kind': 'int64', 'values': [int(v) for v in feat.int64_list.value]}
            elif kind == 'float_list':
                vals = list(feat.float_list.value)
                if key == 'frames':
                    b = np.asarray(vals, '<f4').tobytes()
                    d[key] = {'kind': 'float', 'sha256': hashlib.sha256(b).hexdigest(), 'count': len(vals)}
                else:
                    d[key] = {'kind': 'float', 'values': [struct.pack('<f', v).hex() for v in vals]}
            elif kind == 'bytes_list':
                d[key] = {'kind': 'bytes', 'values': [v.decode('utf-8') for v in feat.bytes_list.value]}
            else:
                raise ValueError(f'{rel}: feature {key} has kind {kind}')
        recs.append(d)
    result[rel] = recs
with open(out_path, 'w') as fh:
    json.dump(result, fh, separators=(',', ':'))
print(len(files), 'files', sum(len(v) for v in result.values()), 'records')
