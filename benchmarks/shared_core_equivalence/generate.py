"""Write the conformers of 4 molecules x 2 samplers (6 each, seed 7) from the molgen tree in argv[1] to argv[2]."""
import sys, numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
import molgen
print(molgen.__file__, file=sys.stderr)
from molgen.api import generate_conformers
out=[]
for smi in ["CC(=O)Nc1ccc(O)cc1","CCOC(=O)C1=CC=CC=C1N","C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)OCC","CCCCCCCCCC(=O)O"]:
    for sampler in ["ode","sde"]:
        m=generate_conformers(smi, n=6, seed=7, sampler=sampler)
        out.append(np.array([c.GetPositions() for c in m.GetConformers()]))
import pickle; pickle.dump(out, open(sys.argv[2],"wb"))
